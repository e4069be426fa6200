"""Segment/RudderStack HTTP tracking API: /v1/identify, /v1/batch (and /v1/track, page, … acknowledged).

identify changes people and alias links two ids of one person (merging an anonymous profile into
the known one, as identify's anonymousId does); every call type is counted, and track calls are
kept raw in the batch (`track_calls(body)` returns them for the events loader). Amplitude cohort traits must carry the
"[Amplitude]" prefix here: a Segment trait "plan:pro" is an ordinary property.
"""

from config import safe_json
from integrations.inbound.parsers.base import (
    People,
    check_count,
    id_type_error,
    normalise_id,
    unstorable_id,
    unstorable_value,
)
from integrations.inbound.parsers.identify import parse_identify

OTHER_TYPES = frozenset({"track", "page", "screen", "group", "alias"})


def messages_of(payload: dict, default_type: str | None = None) -> list:
    if isinstance(payload.get("batch"), list):
        return payload["batch"]
    if default_type and "type" not in payload:
        return [{**payload, "type": default_type}]
    return [payload]


def parse(payload: dict, default_type: str | None = None) -> People:
    people = People()
    messages = messages_of(payload, default_type)
    check_count(len(messages), "batch")
    for position, message in enumerate(messages):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "identify":
            parse_identify(message, position, people, allow_bare=False)
        elif kind == "alias":
            _parse_alias(message, position, people)
        elif kind == "track" and (problem := unstorable_value(message, "track")):
            people.invalid.append((position, message.get("event"), problem))  # never becomes an event
        elif kind in OTHER_TYPES:
            people.other_calls[kind] += 1
        else:
            people.invalid.append((position, kind, f"unknown message type {kind!r}"))
    return people


def _parse_alias(message: dict, position: int, people: People) -> None:
    """alias: previousId (an anonymous id, or a user id the person had) and userId are one person."""
    user_id, previous_id = normalise_id(message.get("userId")), normalise_id(message.get("previousId"))
    problem = next(
        (
            f"{name} {error}"
            for name, value in (("userId", user_id), ("previousId", previous_id))
            if (error := id_type_error(value))
        ),
        None,
    ) or next(filter(None, (unstorable_id(user_id, "userId"), unstorable_id(previous_id, "previousId"))), None)
    if problem or user_id in (None, "") or previous_id in (None, ""):
        people.invalid.append((position, message.get("userId"), problem or "alias needs both userId and previousId"))
        return
    people.other_calls["alias"] += 1
    people.aliases.append((position, user_id, previous_id))


def track_calls(body: bytes, default_type: str | None = None) -> list[dict]:
    """The track messages of a stored /v1 batch body, verbatim (for the events loader)."""
    payload = safe_json.loads(body)
    return [
        m
        for m in messages_of(payload, default_type)
        if isinstance(m, dict) and m.get("type") == "track" and not unstorable_value(m, "track")
    ]


def track_to_event(message: dict) -> dict:
    """A Segment/RudderStack track call in the Amplitude export shape the events loader reads.

    messageId becomes both uuid and $insert_id, so an SDK's retry of the same call is one event.
    """
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    device = context.get("device") if isinstance(context.get("device"), dict) else {}
    os_info = context.get("os") if isinstance(context.get("os"), dict) else {}
    location = context.get("location") if isinstance(context.get("location"), dict) else {}
    timestamp = message.get("timestamp") or message.get("sentAt") or message.get("receivedAt")
    message_id = message.get("messageId")
    return {
        "event_type": str(message.get("event") or "(unnamed track)"),
        "uuid": str(message_id) if message_id else None,
        "$insert_id": str(message_id) if message_id else None,
        "user_id": message.get("userId"),
        "device_id": message.get("anonymousId"),
        "event_time": timestamp,
        "event_properties": message.get("properties") if isinstance(message.get("properties"), dict) else {},
        "user_properties": context.get("traits") if isinstance(context.get("traits"), dict) else {},
        "platform": device.get("type"),
        "os_name": os_info.get("name"),
        "os_version": os_info.get("version"),
        "device_type": device.get("model"),
        "country": location.get("country"),
        "city": location.get("city"),
        "region": location.get("region"),
        "ip_address": context.get("ip"),
        "library": (context.get("library") or {}).get("name") if isinstance(context.get("library"), dict) else None,
    }
