"""One parser per inbound source. Each turns a decoded JSON body into the same small shapes:

- ListChange: ids to add to or remove from one known segment (Amplitude list-based sync);
- People: messages naming a person (identify, cohort webhook users) with cohort flags and properties.

Parsers are pure (no database): the view runs them at receipt to validate and count cheaply, the
apply task runs them again on the stored body, and tests replay fixture payloads through them.
"""

from integrations.inbound.parsers.base import CohortRef, ListChange, Message, People, parse_cohort_key, parse_list_name

__all__ = ["CohortRef", "ListChange", "Message", "People", "parse_cohort_key", "parse_list_name"]
