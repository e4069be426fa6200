"""Shapes shared by the parsers, and the cohort-name rules of Amplitude's property-based sync."""

import re
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings

from config.safe_json import number_problem, string_problem, value_problem
from integrations.inbound.http import InboundError

MAX_COHORT_ID_LENGTH = 255  # Segment.external_id

# "[Amplitude] Power users: 26umsb5". Amplitude's own samples also show the bare form
# "cohort name:123" (the testing sample) — accepted where an Amplitude sender is certain.
_AMPLITUDE_KEY = re.compile(r"^\s*\[Amplitude\]\s*(?P<name>.*?)\s*:\s*(?P<id>[^\s:]+)\s*$", re.IGNORECASE)
_BARE_KEY = re.compile(r"^\s*(?P<name>[^:\[\]]+?)\s*:\s*(?P<id>[^\s:]+)\s*$")


@dataclass(frozen=True)
class CohortRef:
    cohort_id: str
    name: str


def parse_cohort_key(key: str, *, allow_bare: bool) -> CohortRef | None:
    """The cohort named by a trait key, or None for an ordinary trait."""
    match = _AMPLITUDE_KEY.match(key) or (_BARE_KEY.match(key) if allow_bare else None)
    if not match:
        return None
    name = match["name"].strip().strip("{}$ ") or match["id"]
    return CohortRef(cohort_id=match["id"].strip("{}$"), name=name)


def parse_list_name(name: str) -> CohortRef | None:
    """/lists names are "[Amplitude] <cohort name>: <cohort id>"; tolerate "<name>:<id>" too."""
    return parse_cohort_key(name, allow_bare=True) if isinstance(name, str) else None


def as_flag(value: object) -> bool | None:
    """True/False for a cohort trait value (JSON booleans, or the strings of the doc's Python samples)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def id_type_error(value: object) -> str | None:
    """Why a pushed id is not an identifier at all (not a string or number), or None."""
    if value is None or isinstance(value, str):
        return None  # null and "" are identifiers of the blocked kind: reported per row, not a 400
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"not a string or number ({type(value).__name__})"
    return None


def unstorable_id(value: object, name: str) -> str | None:
    """Why an id cannot be stored at all (NUL, lone surrogate, NaN/Infinity), naming it, or None.

    A message carrying such an id is set aside whole: applying the rest of it (say, as an
    anonymous device when its userId is unusable) would be a guess.
    """
    if isinstance(value, str):
        problem = string_problem(value)
    elif isinstance(value, float):
        problem = number_problem(value)
    else:
        return None
    return f"{name} {problem}" if problem else None


def unstorable_value(value: object, name: str) -> str | None:
    """Why a JSON value (traits, properties, a whole track call) cannot be stored, naming where, or None."""
    problem = value_problem(value, name)
    return f"{problem[0]} {problem[1]}" if problem else None


def cohort_problem(cohort: CohortRef) -> str | None:
    """Why a cohort named by a push cannot become a segment, or None."""
    for what, text in (("cohort id", cohort.cohort_id), ("cohort name", cohort.name)):
        problem = string_problem(text)
        if problem:
            return f"{what} {problem}"
    if len(cohort.cohort_id) > MAX_COHORT_ID_LENGTH:
        return f"cohort id longer than {MAX_COHORT_ID_LENGTH} characters"
    return None


def normalise_id(value: object) -> object:
    """12.0 → 12: Amplitude may serialise numeric ids as floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_count(count: int, field_name: str) -> None:
    limit = settings.INBOUND_MAX_IDS_PER_REQUEST
    if count > limit:
        raise InboundError(
            413,
            "too_many_ids",
            f"{field_name} holds {count} items; the limit is {limit} per request.",
            fields={field_name: [f"more than {limit} items"]},
        )


@dataclass
class ListChange:
    values: list  # raw identifiers as sent (the kind comes from the API key)
    add: bool


@dataclass
class Message:
    position: int
    user_id: object = None  # in the key's identity kind
    anonymous_id: object = None  # a device id
    properties: dict = field(default_factory=dict)
    cohorts: dict[str, bool] = field(default_factory=dict)  # cohort id -> in/out


@dataclass
class People:
    messages: list[Message] = field(default_factory=list)
    cohort_names: dict[str, str] = field(default_factory=dict)
    invalid: list[tuple[int, object, str]] = field(default_factory=list)  # rows refused at parse time
    other_calls: Counter = field(default_factory=Counter)  # /v1 track, page, … acknowledged and counted
    # Segment alias calls: (position, userId, previousId): the two ids name one person.
    aliases: list[tuple[int, object, object]] = field(default_factory=list)
