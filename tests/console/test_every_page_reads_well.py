"""Every console page, as every role, reads as sentences and labelled numbers (issue 19.5 and 19.2).

The demo workspace is seeded against every sandbox (as `python3 dev.py run` does) and put in
Europe/Berlin; then each role opens every page of the URL conf (ids filled as the production smoke
fills them) and the text a reader sees (no tags, scripts, attributes or <pre> request samples,
which show on purpose what is sent) must hold:

- no raw dictionary or list literal (`{}`, `{'a': 1}`, `[]`, `['a']`);
- no ISO timestamp (`2026-12-04 06:00`, `2026-12-04T06:00:00`): moments go through the
  `when`/`clock`/`day`/`ago` filters, and each `when` carries its zone's label;
- no field name or form filler the issue names (`rows_read`, "Base url", "(full)", `---------`).
"""

import re
from html.parser import HTMLParser

import pytest

from config.smoke import console_urls
from tests.test_demo import demo_sandboxes, seed  # noqa: F401 (fixture)
from workspaces.models import Workspace

ROLES = ("admin", "ops", "marketer", "viewer")

RAW_DICT = re.compile(r"\{\s*\}|\{\s*['\"]?[\w ]+['\"]?\s*:\s*\S")
RAW_LIST = re.compile(r"\[\s*\]|\[\s*['\"\d]")
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
# The console's own format ("4 Dec 2026, 06:00") must be followed by the zone's label.
OURS_UNLABELLED = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}(:\d{2})?(?!:| [A-Z]{2,5}\b| [+-]\d{2})")
WORDS = ("skipped_reasons", "rows_read", "rows_written", "Base url", "(full)", "---------", "API target")


class VisibleText(HTMLParser):
    """The text a reader sees: outside <script>, <style>, <pre>, <template> and <option> lists of
    choices are kept (they are read)."""

    HIDDEN = {"script", "style", "pre", "template", "noscript", "textarea"}  # a textarea holds a value being edited

    def __init__(self):
        super().__init__()
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)

    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return parser.text()


def problems_in(text: str) -> list[str]:
    found = []
    for name, pattern in (("raw dict", RAW_DICT), ("raw list", RAW_LIST), ("ISO timestamp", ISO)):
        found += [f"{name}: …{text[max(0, m.start() - 40) : m.end() + 40]}…" for m in pattern.finditer(text)]
    found += [
        f"time without its zone: …{text[max(0, m.start() - 40) : m.end() + 20]}…"
        for m in OURS_UNLABELLED.finditer(text)
    ]
    found += [f"field name or filler {word!r}" for word in WORDS if word in text]
    return found


def test_the_checks_catch_what_they_are_for():
    """The patterns are not vacuous: each bad example is caught, each good one passes."""
    for bad in (
        "skipped: {}",
        "reasons {'missing_id': 3}",
        'config {"base_url": "x"}',
        "ids []",
        "ids ['a', 'b']",
        "started 2026-12-04 06:00",
        "at 2026-12-04T06:00:00+00:00",
        "at 4 Dec 2026, 06:00 and",
        "Base url",
        "Mode full (full)",
    ):
        assert problems_in(visible_text(f"<p>{bad}</p>")), bad
    for good in (
        "[Amplitude] Trial users: 42",
        "at 4 Dec 2026, 06:00 CET and",
        "at 4 Dec 2026, 06:00:15 UTC",
        "Rows 1–50 of 280",
        "<pre>{'sent': 'on purpose'}</pre>",
        "<script>var a = {x: [1]};</script>",
    ):
        assert problems_in(visible_text(f"<p>{good}</p>")) == [], good


@pytest.mark.slow
def test_every_console_page_reads_well_for_every_role(
    db,
    demo_sandboxes,  # noqa: F811
    client,
    django_capture_on_commit_callbacks,
):
    seed(django_capture_on_commit_callbacks)
    workspace = Workspace.objects.get(slug="demo")
    workspace.timezone = "Europe/Berlin"
    workspace.save(update_fields=["timezone"])
    urls, unfilled = console_urls(workspace)
    assert unfilled == []
    from django.contrib.auth import get_user_model

    problems, seen = [], 0
    for role in ROLES:
        client.force_login(get_user_model().objects.get(username=role))
        for url in urls:
            response = client.get(url)
            if response.status_code in (301, 302, 405) or not response["Content-Type"].startswith("text/html"):
                continue
            assert response.status_code < 500, f"{role} {url}: {response.status_code}"
            seen += 1
            problems += [f"[{role}] {url}: {p}" for p in problems_in(visible_text(response.content.decode()))]
    assert seen > 4 * 25  # every page, not a handful
    assert problems == [], "\n".join(sorted(set(problems)))
