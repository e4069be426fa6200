"""Identify messages, Amplitude property-based sync and Segment/RudderStack alike.

    {"type": "identify", "userId": "u1", "anonymousId": "d1",
     "traits": {"[Amplitude] Power users: 26umsb5": true, "plan": "pro"}, "context": {...}}
    {"batch": [<identify>, ...]}

Traits of the cohort form change membership; every other trait updates the profile's properties.
"""

from integrations.inbound.parsers.base import (
    Message,
    People,
    as_flag,
    check_count,
    cohort_problem,
    id_type_error,
    normalise_id,
    parse_cohort_key,
    unstorable_id,
    unstorable_value,
)


def parse_identify(message: object, position: int, people: People, *, allow_bare: bool) -> None:
    """Append one identify message to `people` (or an invalid row with its reason)."""
    if not isinstance(message, dict):
        people.invalid.append((position, message, "a message must be a JSON object"))
        return
    user_id = message.get("userId", message.get("user_id"))
    anonymous_id = message.get("anonymousId", message.get("anonymous_id"))
    for name, value in (("userId", user_id), ("anonymousId", anonymous_id)):
        reason = id_type_error(value)
        reason = f"{name} {reason}" if reason else unstorable_id(value, name)
        if reason:
            people.invalid.append((position, value, reason))
            return
    if user_id in (None, "") and anonymous_id in (None, ""):
        people.invalid.append((position, None, "userId or anonymousId is required"))
        return
    traits = message.get("traits")
    if traits is None:
        traits = (message.get("context") or {}).get("traits") if isinstance(message.get("context"), dict) else None
    if traits is not None and not isinstance(traits, dict):
        people.invalid.append((position, traits, "traits must be a JSON object"))
        return
    problem = unstorable_value(traits, "traits") if traits else None
    if problem:
        people.invalid.append((position, user_id if user_id is not None else anonymous_id, problem))
        return
    parsed = Message(position=position, user_id=normalise_id(user_id), anonymous_id=normalise_id(anonymous_id))
    names = {}
    for key, value in (traits or {}).items():
        flag = as_flag(value)
        cohort = parse_cohort_key(key, allow_bare=allow_bare) if flag is not None else None
        if cohort is not None:
            problem = cohort_problem(cohort)
            if problem:
                people.invalid.append((position, key, f"traits: {problem}"))
                return
            parsed.cohorts[cohort.cohort_id] = flag
            names[cohort.cohort_id] = cohort.name
        else:
            parsed.properties[key] = value
    people.cohort_names.update(names)
    people.messages.append(parsed)


def parse_amplitude(payload: dict) -> People:
    """Amplitude's property-based sync: one identify, or {"batch": [...]}. Bare "name:123" keys count as cohorts."""
    people = People()
    messages = payload["batch"] if isinstance(payload.get("batch"), list) else [payload]
    check_count(len(messages), "batch")
    for position, message in enumerate(messages):
        if isinstance(message, dict) and message.get("type", "identify") != "identify":
            people.other_calls[str(message.get("type"))] += 1
            continue
        parse_identify(message, position, people, allow_bare=True)
    return people
