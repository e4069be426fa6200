"""Pieces shared by the fakes that receive Amplitude cohort syncs (list, traits, webhook)."""

from __future__ import annotations

from collections.abc import Iterable

from .base import FakePartner, Reply, Request

AUTH_MODES = ("basic", "header", "bearer", "none")


class AmplitudeReceiver(FakePartner):
    """Auth + "reject ids" behaviour of a partner endpoint configured in Amplitude's Integration Portal.

    auth: "basic" (api_key as username, `secret` as password - empty by default, as Amplitude sends),
    "header" (`auth_header: <api_key>`, the doc's test example), "bearer", or "none".
    reject_ids / reject_prefix mark user ids the partner refuses; reject_mode "request" fails the
    whole call with 400 (clients must bisect), "row" applies the rest and lists the rejected ones.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        auth: str = "basic",
        secret: str = "",
        auth_header: str = "api_key",
        reject_ids: Iterable[str] = (),
        reject_prefix: str | None = None,
        reject_mode: str = "request",
        max_ids: int = 10_000,
        **base: object,
    ) -> None:
        if auth not in AUTH_MODES or reject_mode not in ("request", "row"):
            raise ValueError(f"bad auth={auth!r} or reject_mode={reject_mode!r}")
        self.api_key, self.auth, self.secret, self.auth_header = api_key, auth, secret, auth_header
        self.reject_ids, self.reject_prefix, self.reject_mode = set(reject_ids), reject_prefix, reject_mode
        self.max_ids = max_ids  # Amplitude sends up to 10k ids per call (docs/partner-apis.md section 3)
        super().__init__(**base)

    def route(self, req: Request) -> Reply:
        if not self.authorized(req):
            return Reply(401, {"error": "invalid api_key"})
        if req.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        if req.body_error or not isinstance(req.body, dict):
            return Reply(400, {"error": req.body_error or "body must be a JSON object"})
        return self.receive(req)

    def receive(self, req: Request) -> Reply:
        raise NotImplementedError

    def authorized(self, req: Request) -> bool:
        if self.auth == "basic":
            return req.basic_auth() == (self.api_key, self.secret)
        if self.auth == "header":
            return req.header(self.auth_header) == self.api_key
        if self.auth == "bearer":
            return req.header("authorization") == f"Bearer {self.api_key}"
        return True

    def is_rejected(self, user_id: str) -> bool:
        return user_id in self.reject_ids or bool(self.reject_prefix and user_id.startswith(self.reject_prefix))

    def screen(self, user_ids: list[str]) -> tuple[list[str], Reply | None, list[dict]]:
        """Split ids into accepted ones; returns (accepted, error reply or None, per-row rejections)."""
        bad = [u for u in user_ids if self.is_rejected(u)]
        if bad and self.reject_mode == "request":
            return [], Reply(400, {"error": "invalid user id", "invalid": bad}), []
        rows = [{"userId": u, "reason": "invalid user id"} for u in bad]
        bad_set = set(bad)
        return [u for u in user_ids if u not in bad_set], None, rows

    def ok(self, rejected: list[dict]) -> Reply:
        return Reply(200, {"success": True, "rejected": rejected} if rejected else {"success": True})
