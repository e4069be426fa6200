"""Amplitude list-based cohort sync: POST /lists, /lists/<id>/add, /lists/<id>/remove.

{"name": "[Amplitude] Power users: 26umsb5", "context": {"integration": {...}}}
{"userIds": ["u1", "u2", 42, ...], "context": {...}}
"""

from integrations.inbound.http import InboundError
from integrations.inbound.parsers.base import (
    CohortRef,
    ListChange,
    check_count,
    cohort_problem,
    id_type_error,
    normalise_id,
    parse_list_name,
)


def parse_create(payload: dict) -> CohortRef:
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InboundError(
            400, "invalid", 'name is required: "[Amplitude] <cohort name>: <cohort id>".', fields={"name": ["required"]}
        )
    cohort = parse_list_name(name)
    problem = cohort_problem(cohort) if cohort is not None else None
    if problem:
        raise InboundError(400, "invalid", f"name: {problem}.", fields={"name": [problem]})
    if cohort is None:
        raise InboundError(
            400,
            "invalid",
            f"name {name[:200]!r} does not end with ': <cohort id>'.",
            fields={"name": ['expected "[Amplitude] <cohort name>: <cohort id>"']},
        )
    return cohort


def parse_change(payload: dict, *, add: bool) -> ListChange:
    """The ids of an add/remove call. Ids that are not strings or numbers refuse the whole request."""
    user_ids = payload.get("userIds")
    if user_ids is None:
        raise InboundError(400, "invalid", "userIds is required (a list of ids).", fields={"userIds": ["required"]})
    if not isinstance(user_ids, list):
        raise InboundError(400, "invalid", "userIds must be a list of ids.", fields={"userIds": ["must be a list"]})
    check_count(len(user_ids), "userIds")
    errors = []
    for position, value in enumerate(user_ids):
        if type(value) is str:  # the common case, kept out of a function call: 10,000 ids per request
            continue
        reason = id_type_error(value)
        if reason:
            errors.append(f"userIds[{position}]: {reason}")
            if len(errors) >= 20:
                break
    if errors:
        raise InboundError(
            400, "invalid", "Every id must be a string or a number. " + "; ".join(errors), fields={"userIds": errors}
        )
    return ListChange(values=[normalise_id(value) for value in user_ids], add=add)
