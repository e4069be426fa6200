"""Amplitude Cohort Webhooks (default payload), deduplicated on message_id.

{"cohort_name": "My Test Cohort", "cohort_id": "7khm89cz", "in_cohort": true,
 "computed_time": "1692206763", "message_id": "9baaa88f-...::enter::0",
 "users": [{"user_id": "u1", "user_properties": {...}}]}
"""

from config.safe_json import string_problem
from integrations.inbound.http import InboundError
from integrations.inbound.parsers.base import (
    MAX_COHORT_ID_LENGTH,
    CohortRef,
    Message,
    People,
    as_flag,
    check_count,
    id_type_error,
    normalise_id,
    unstorable_id,
    unstorable_value,
)


def parse_header(payload: dict) -> tuple[CohortRef, bool, str]:
    """(cohort, in_cohort, message_id), or a 400 naming the missing field."""
    errors = {}
    cohort_id = payload.get("cohort_id")
    if not isinstance(cohort_id, str | int) or isinstance(cohort_id, bool) or not str(cohort_id).strip():
        errors["cohort_id"] = ["required (string)"]
    in_cohort = as_flag(payload.get("in_cohort"))
    if in_cohort is None:
        errors["in_cohort"] = ["required (true or false)"]
    message_id = payload.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip():
        errors["message_id"] = ["required (string)"]
    if not isinstance(payload.get("users"), list):
        errors["users"] = ["required (a list of {user_id, user_properties})"]
    for name in ("cohort_id", "cohort_name", "message_id"):
        problem = string_problem(payload[name]) if isinstance(payload.get(name), str) else None
        if problem:
            errors[name] = [problem]
    if not errors and len(str(cohort_id).strip()) > MAX_COHORT_ID_LENGTH:
        errors["cohort_id"] = [f"longer than {MAX_COHORT_ID_LENGTH} characters"]
    if errors:
        raise InboundError(
            400, "invalid", "Invalid cohort webhook payload: " + ", ".join(sorted(errors)) + ".", fields=errors
        )
    check_count(len(payload["users"]), "users")
    name = payload.get("cohort_name") if isinstance(payload.get("cohort_name"), str) else ""
    return CohortRef(cohort_id=str(cohort_id).strip(), name=name or str(cohort_id)), in_cohort, message_id.strip()


def parse(payload: dict) -> People:
    cohort, in_cohort, _ = parse_header(payload)
    people = People(cohort_names={cohort.cohort_id: cohort.name})
    for position, user in enumerate(payload["users"]):
        if not isinstance(user, dict):
            people.invalid.append((position, user, "a user must be a JSON object"))
            continue
        user_id = user.get("user_id")
        reason = id_type_error(user_id)
        properties = user.get("user_properties") if isinstance(user.get("user_properties"), dict) else {}
        reason = (
            f"user_id {reason}"
            if reason
            else unstorable_id(user_id, "user_id") or unstorable_value(properties, "user_properties")
        )
        if reason:
            people.invalid.append((position, user_id, reason))
            continue
        people.messages.append(
            Message(
                position=position,
                user_id=normalise_id(user_id),
                properties=properties,
                cohorts={cohort.cohort_id: in_cohort},
            )
        )
    return people
