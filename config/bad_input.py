"""Query parameters that no query can use answer 400 naming the parameter, before any view runs.

PostgreSQL cannot store or compare text holding NUL (U+0000): a `?q=a%00b` reaching a filter would
be a 500 wherever a parameter meets the database (console searches, API lookups by identity).
"""

from config.safe_json import string_problem
from integrations.api_errors import json_error


class RefuseUnstorableParameters:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            for text in (name, *values):
                problem = string_problem(text)
                if problem:
                    shown = name.replace("\x00", "\\u0000")
                    return json_error(400, "invalid", f"{shown}: {problem}.", fields={shown: [problem]})
        return self.get_response(request)
