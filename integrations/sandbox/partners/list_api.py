"""Fake partner for Amplitude's *list-based* cohort sync (docs/partner-apis.md section 3).

    POST /lists                 {"name": "...", "context": {...}}   -> 200 {"listId": 1}
    POST /lists/{listId}/add    {"userIds": [...], "context": {...}} -> 200 {"success": true}
    POST /lists/{listId}/remove {"userIds": [...], "context": {...}} -> 200 {"success": true}

Membership is kept in memory so tests can assert the final state: ``fake.members(list_id)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._amplitude import AmplitudeReceiver
from .base import Reply, Request

_MEMBERS_PATH = re.compile(r"^/lists/(?P<list_id>[^/]+)/(?P<op>add|remove)$")


@dataclass
class FakeList:
    id: int
    name: str
    context: dict | None
    members: set[str] = field(default_factory=set)


def nest(path: str, value: object) -> dict:
    """ "data.list.id" -> {"data": {"list": {"id": value}}}: Amplitude's id JSON path is configurable."""
    out: object = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out  # type: ignore[return-value]


class ListApiFake(AmplitudeReceiver):
    kind = "list_api"

    def __init__(self, *, list_id_path: str = "listId", first_list_id: int = 1, **options: object) -> None:
        self.list_id_path, self.first_list_id = list_id_path, first_list_id
        super().__init__(**options)

    def reset_state(self) -> None:
        self.lists: dict[str, FakeList] = {}
        self._next_id = self.first_list_id

    def members(self, list_id: int | str) -> set[str]:
        return set(self.lists[str(list_id)].members)

    def summary(self) -> dict:
        return {"lists": {k: len(v.members) for k, v in self.lists.items()}}

    def receive(self, req: Request) -> Reply:
        if req.path.rstrip("/") == "/lists":
            return self._create(req.body)
        match = _MEMBERS_PATH.match(req.path)
        if not match:
            return Reply(404, {"error": "not found"})
        target = self.lists.get(match["list_id"])
        if target is None:
            return Reply(404, {"error": "list not found", "listId": match["list_id"]})
        ids = req.body.get("userIds")
        if not isinstance(ids, list) or not all(isinstance(u, str) and u for u in ids):
            return Reply(400, {"error": "userIds must be a list of non-empty strings"})
        if len(ids) > self.max_ids:
            return Reply(400, {"error": "too many userIds", "max": self.max_ids})
        accepted, error, rejected = self.screen(ids)
        if error:
            return error
        if match["op"] == "add":
            target.members.update(accepted)
        else:  # removing a non-member is a no-op: Amplitude retries, so this must be idempotent
            target.members.difference_update(accepted)
        return self.ok(rejected)

    def _create(self, body: dict) -> Reply:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return Reply(400, {"error": "name is required"})
        # Every call makes a new list, as a naive partner would: tests can catch duplicate creation.
        new = FakeList(self._next_id, name, body.get("context"))
        self.lists[str(new.id)] = new
        self._next_id += 1
        return Reply(200, nest(self.list_id_path, new.id))
