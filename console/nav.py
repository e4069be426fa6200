"""The console's navigation: one list of entries (add a page here and every role's menu has it).

Entries in the "main" group sit on the bar; the "settings" group folds into the Settings menu. An
entry may need a permission (`can_manage_credentials` of the membership, or `staff`). The current
page is the entry whose path is the longest prefix of the request's path.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse


@dataclass(frozen=True)
class Entry:
    label: str
    target: str  # a URL name ("console:syncs") or a path ("/api/docs/")
    group: str = "main"  # "main" or "settings"
    needs: str = ""  # "", "can_manage_credentials", "staff"

    @property
    def url(self) -> str:
        return self.target if self.target.startswith("/") else reverse(self.target)


NAV = [
    Entry("Dashboard", "console:dashboard"),
    Entry("Sources", "console:sources"),
    Entry("Segments", "console:segments"),
    Entry("Destinations", "console:destinations"),
    Entry("Syncs", "console:syncs"),
    Entry("Campaigns", "console:campaigns"),
    Entry("Activity", "console:find-people"),
    # Setup pages: every member sees them; those who may not touch credentials read them, and ask from there.
    Entry("Authorizations", "console:authorizations", group="settings"),
    Entry("API keys", "console:api-keys", group="settings"),
    Entry("Amplitude setup", "console:amplitude-setup", group="settings"),
    Entry("Erasures", "console:erasures", group="settings", needs="can_manage_credentials"),
    Entry("API reference", "/api/docs/", group="settings"),
    Entry("Admin (ops)", "/admin/", group="settings", needs="staff"),
]


@dataclass(frozen=True)
class Shown:
    label: str
    url: str
    current: bool


def _allowed(entry: Entry, request) -> bool:
    if entry.needs == "staff":
        return request.user.is_staff
    if entry.needs:
        membership = getattr(request, "membership", None)
        return bool(membership and getattr(membership, entry.needs))
    return True


def navigation(request) -> dict:
    """Context processor: nav_main and nav_settings, the current entry marked."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    entries = [(entry, entry.url) for entry in NAV if _allowed(entry, request)]
    matching = [url for _, url in entries if request.path == url or (url != "/" and request.path.startswith(url))]
    current = max(matching, key=len, default=None)
    shown = {"main": [], "settings": []}
    for entry, url in entries:
        shown[entry.group].append(Shown(entry.label, url, url == current))
    return {
        "nav_main": shown["main"],
        "nav_settings": shown["settings"],
        "nav_settings_current": any(item.current for item in shown["settings"]),
    }
