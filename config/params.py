"""Integer query and form parameters: a value that is not a plain number is the caller's mistake (400
naming the parameter), never a 500 from int() or the database.

Only ASCII digits count: str.isdigit() also accepts "²" and other digits int() refuses or the
database was never meant to see.
"""

from django.core.exceptions import BadRequest

MAX_DIGITS = 18  # fits a bigint


class BadParameter(BadRequest):
    """The console answers 400; the API's exception handler turns it into a 400 JSON error naming it."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


def is_plain_int(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS


def int_param(params, name: str) -> int | None:
    """`params[name]` as a non-negative int, None when absent or empty; BadParameter otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not is_plain_int(raw):
        raise BadParameter(name, f"must be a whole number (an id), not {raw[:40]!r}.")
    return int(raw)
