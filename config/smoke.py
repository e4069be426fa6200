"""The production smoke's browser half: every console page, the admin index and every API list, as
each role, against a running production start (`python3 dev.py smoke` starts it, see config/devctl.py).

    python -m config.smoke --base-url http://127.0.0.1:PORT --password PW

Pages come from the URL conf, so a new page is covered without editing this file; the ids in their
URLs are filled from the seeded demo workspace by FILLERS (a page with a parameter it cannot fill
fails the smoke, and tests/test_smoke.py, until it is added). API lists come from the OpenAPI schema.

It fails on any 5xx (a page, a part htmx loads, an API call), any static file that does not load, any
console error about a resource that failed to load (the page's own 403/404 excepted: roles are
meant to be refused some pages) and any uncaught JavaScript error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import django
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROLES = ("admin", "ops", "marketer", "viewer")  # the demo's users: owner (and superuser), ops, marketer, viewer
WORKSPACE = "demo"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Not visited: signing out would end the role's session half-way.
SKIPPED = {"console:logout"}
# Pages outside the console namespace that the smoke opens too.
EXTRA_PAGES = ["/admin/", "/admin/retention/prunerun/", "/api/docs/", "/healthz"]


# --- which pages ---------------------------------------------------------------------------------


def _pk(model, workspace, **filters) -> list[dict]:
    pk = model.objects.filter(workspace=workspace, **filters).order_by("pk").values_list("pk", flat=True).first()
    return [{"pk": pk}] if pk is not None else []


def _all(model, workspace, **filters) -> list[dict]:
    return [{"pk": pk} for pk in model.objects.filter(workspace=workspace, **filters).values_list("pk", flat=True)]


def _fillers() -> dict[str, Callable]:
    """URL name -> the keyword arguments to reverse it with, from the seeded workspace.

    (The imports in this module's functions wait for main()'s django.setup(): it runs as a script.)
    """
    from audiences.models import Erasure, Profile, Segment
    from campaigns.models import Campaign
    from integrations.connectors.registry import CONNECTORS
    from integrations.delivery.models import Destination, SyncJob
    from integrations.models import ApiKey, Authorization
    from integrations.sources.models import AmplitudeProject, CohortImportJob, EventImportJob, ImportRun
    from workspaces.models import SetupRequest

    def destinations(ws):  # every partner's page differs (campaign lists, event streams, ...)
        return _all(Destination, ws)

    return {
        "revoke-api-key": lambda ws: _pk(ApiKey, ws),
        "authorization-edit": lambda ws: _pk(Authorization, ws),
        "source": lambda ws: _pk(AmplitudeProject, ws),
        "source-test": lambda ws: _pk(AmplitudeProject, ws),
        "source-edit": lambda ws: _pk(AmplitudeProject, ws),
        "source-delete": lambda ws: _pk(AmplitudeProject, ws),
        "run-job": lambda ws: (
            [{"kind": "cohort", **kwargs} for kwargs in _pk(CohortImportJob, ws)]
            + [{"kind": "event", **kwargs} for kwargs in _pk(EventImportJob, ws)]
        ),
        "retry-import-run": lambda ws: _pk(ImportRun, ws),
        "segment": lambda ws: _pk(Segment, ws),
        "person-erase": lambda ws: _pk(Profile, ws),
        "erasure": lambda ws: _pk(Erasure, ws),
        "segment-members-csv": lambda ws: _pk(Segment, ws),
        "export-to-kahuna": lambda ws: _pk(Segment, ws),
        "destination-new": lambda ws: [{"kind": kind} for kind in CONNECTORS],
        "destination": destinations,
        "destination-edit": destinations,
        "destination-test": lambda ws: _pk(Destination, ws),
        "destination-delete": lambda ws: _pk(Destination, ws),
        "kahuna-campaigns-refresh": lambda ws: _pk(Destination, ws, kind="kahuna"),
        "sync": lambda ws: _all(SyncJob, ws),
        "sync-progress": lambda ws: _pk(SyncJob, ws),
        "sync-action": lambda ws: [{"action": "pause", **kwargs} for kwargs in _pk(SyncJob, ws)],
        "person": lambda ws: _pk(Profile, ws),
        # Each campaign: a past one sent, a live one sending, each shows other parts.
        "campaign": lambda ws: _all(Campaign, ws),
        "campaign-progress": lambda ws: _pk(Campaign, ws),
        # A draft shows the form; without one, a campaign's edit leads back to its page.
        "campaign-edit": lambda ws: _pk(Campaign, ws, status="draft") or _pk(Campaign, ws),
        # A GET only leads back to the campaign's page: actions are POSTs.
        "campaign-action": lambda ws: [{"action": "stop", **kwargs} for kwargs in _pk(Campaign, ws)],
        "setup-request-done": lambda ws: _pk(SetupRequest, ws),
    }


def console_routes() -> list[tuple[str, list[str]]]:
    """Every console URL name with the names of its parameters, from the URL conf."""
    from django.urls import get_resolver

    console = get_resolver().namespace_dict["console"][1]
    return sorted(
        (f"console:{name}", sorted(console.reverse_dict.getlist(name)[0][3]))
        for name in console.reverse_dict
        if isinstance(name, str)
    )


def unfillable(fillers: dict[str, Callable] | None = None) -> list[str]:
    """Console URLs with parameters that FILLERS does not know how to fill."""
    fillers = fillers if fillers is not None else _fillers()
    return [
        name
        for name, params in console_routes()
        if params and name not in SKIPPED and name.split(":", 1)[1] not in fillers
    ]


def console_urls(workspace) -> tuple[list[str], list[str]]:
    """(URLs to visit, problems): every console page, ids filled from `workspace`."""
    from django.urls import reverse

    fillers, urls, problems = _fillers(), [], []
    for name, params in console_routes():
        if name in SKIPPED:
            continue
        if not params:
            urls.append(reverse(name))
            continue
        short = name.split(":", 1)[1]
        if short not in fillers:
            problems.append(f"{name} has parameters {params} and the smoke cannot fill them: add it to FILLERS")
            continue
        choices = fillers[short](workspace)
        if not choices:
            problems.append(f"{name}: the seeded workspace has nothing to show on it (seed one)")
        urls += [reverse(name, kwargs=kwargs) for kwargs in choices]
    return urls, problems


def say(message: str) -> None:
    print(f"smoke  | {message}", flush=True)


# --- visiting ------------------------------------------------------------------------------------


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    pages: int = 0
    api_calls: int = 0
    busy: int = 0  # pages still loading parts after 5 s (polling)
    started: float = field(default_factory=time.monotonic)
    statics: set[str] = field(default_factory=set)

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)


def _watch(page, role: str, report: Report, current: dict) -> None:
    def on_response(response) -> None:
        path = urlsplit(response.url).path
        if path.startswith("/static/"):
            report.statics.add(path)
            if response.status >= 400:
                report.fail(f"[{role}] static file {path}: HTTP {response.status} (on {current['url']})")
        if response.status >= 500:
            report.fail(f"[{role}] HTTP {response.status} for {response.url} (on {current['url']})")

    def on_console(message) -> None:
        if message.type != "error" or "Failed to load resource" not in message.text:
            return
        failed = (message.location or {}).get("url", "")
        if urlsplit(failed).path == urlsplit(current["url"]).path and " 5" not in message.text:
            return  # the page itself answered 403/404: a role refused a page, which tests check
        report.fail(f"[{role}] console: {message.text} {failed} (on {current['url']})")

    def on_request_failed(request) -> None:
        if urlsplit(request.url).path.startswith("/static/"):
            report.fail(f"[{role}] static file {request.url} did not load: {request.failure} (on {current['url']})")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: report.fail(f"[{role}] JavaScript error on {current['url']}: {error}"))
    page.on("requestfailed", on_request_failed)


def visit_as(browser, base_url: str, role: str, password: str, urls: list[str], report: Report) -> None:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    current = {"url": "/login/"}
    _watch(page, role, report, current)
    page.goto("/login/")
    page.fill("#id_username", role)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    if urlsplit(page.url).path.startswith("/login"):
        report.fail(f"[{role}] could not sign in (still on {page.url})")
        context.close()
        return
    for url in [*urls, *EXTRA_PAGES]:
        current["url"] = url
        # A plain request first: a CSV download or a POST-only view is checked for its status without
        # a browser tab (which would refuse to render a download).
        response = context.request.get(url, max_redirects=0)
        if response.status >= 500:
            report.fail(f"[{role}] HTTP {response.status} for {url}")
            continue
        if response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
            continue
        page.goto(url, wait_until="load")  # the page with its styles, scripts and images
        if page.locator("[hx-trigger]").count():
            try:  # parts htmx loads after the page (hx-trigger="load", polling)
                page.wait_for_load_state("networkidle", timeout=5_000)
            except PlaywrightTimeout:  # a page that keeps polling is fine: what it loaded was checked
                report.busy += 1
        report.pages += 1
    call_api(context.request, role, report)  # with the role's session, as the console's own scripts would
    context.close()
    say(f"{role}: done at {time.monotonic() - report.started:.0f}s")


def _api_fillers() -> dict[str, Callable]:
    """API list paths with an id in them -> the ids to fill it with, from the seeded workspace."""
    from campaigns.models import Campaign

    return {
        "/api/v1/campaigns/{id}/enrollments/": lambda ws: [
            {"id": pk} for pk in Campaign.objects.filter(workspace=ws).values_list("pk", flat=True)[:5]
        ],
    }


def api_lists(requests) -> list[str]:
    """Every list of the schema: those without an id, and those API_FILLERS fills from the demo."""
    from workspaces.models import Workspace

    schema = requests.get("/api/schema/?format=json")
    if schema.status != 200:
        raise RuntimeError(f"/api/schema/ answered {schema.status}")
    paths = [path for path, operations in schema.json()["paths"].items() if "get" in operations]
    workspace = Workspace.objects.filter(slug=WORKSPACE).first()
    fillers, filled = _api_fillers(), []
    for path in paths:
        if path in fillers and workspace is not None:
            filled += [path.format(**kwargs) for kwargs in fillers[path](workspace)]
    return sorted([path for path in paths if "{" not in path] + filled)


def call_api(requests, who: str, report: Report, headers: dict | None = None) -> None:
    """GET every list of the schema through `requests` (a Playwright APIRequestContext)."""
    for path in api_lists(requests):
        response = requests.get(path, headers=headers or {})
        report.api_calls += 1
        if response.status >= 500:
            report.fail(f"[{who}] API {path}: HTTP {response.status}")


def call_api_with_key(playwright, base_url: str, report: Report) -> None:
    """The same lists with a management key (read access), as scripts call them."""
    from integrations.models import ApiKey
    from workspaces.models import Workspace

    workspace = Workspace.objects.get(slug=WORKSPACE)
    _key, raw = ApiKey.issue(workspace, scope="management", name="smoke (read)", access="read")
    try:
        requests = playwright.request.new_context(base_url=base_url)
        call_api(requests, "read key", report, headers={"Authorization": f"Bearer {raw}"})
        requests.dispose()
    finally:
        _key.revoke("the smoke is over")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    # Playwright's sync API runs an event loop in this thread; this script's few ORM calls are
    # synchronous all the same (as in tests/browser).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django.setup()
    from workspaces.models import Workspace

    workspace = Workspace.objects.get(slug=WORKSPACE)
    urls, problems = console_urls(workspace)
    report = Report(failures=list(problems))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        for role in ROLES:
            visit_as(browser, args.base_url, role, args.password, urls, report)
        browser.close()
        call_api_with_key(playwright, args.base_url, report)
    say(
        f"{len(urls) + len(EXTRA_PAGES)} URLs x {len(ROLES)} roles: {report.pages} pages rendered "
        f"({report.busy} still polling after 5 s), {report.api_calls} API calls, {len(report.statics)} static files, "
        f"{time.monotonic() - report.started:.0f}s"
    )
    for failure in report.failures:
        say(f"FAIL {failure}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
