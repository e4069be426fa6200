"""The smoke's browser checks catch what they are there for: a 5xx, a static file that does not load,
a failed resource; and let a role's refused page (403) pass."""

import pytest
from django.http import HttpResponse
from django.urls import include, path

from config.smoke import Report, visit_as
from tests.conftest import PASSWORD


def _broken(request):
    raise RuntimeError("boom")


def _missing_static(request):
    return HttpResponse('<!doctype html><html><head><link rel="stylesheet" href="/static/nope.css"></head></html>')


def _refused(request):
    return HttpResponse("<!doctype html><p>not for you</p>", status=403)


urlpatterns = [
    path("smoke/broken/", _broken),
    path("smoke/missing-static/", _missing_static),
    path("smoke/refused/", _refused),
    path("", include("config.urls")),
]


@pytest.fixture
def smoke_urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.mark.browser
def test_the_smoke_flags_a_5xx_and_a_missing_static_file(browser, live_server, smoke_urls, alice, monkeypatch):
    monkeypatch.setattr("config.smoke.EXTRA_PAGES", [])
    monkeypatch.setattr("config.smoke.call_api", lambda *args, **kwargs: None)
    report = Report()
    visit_as(browser, live_server.url, "alice", PASSWORD, ["/smoke/broken/", "/smoke/missing-static/"], report)
    text = "\n".join(report.failures)
    assert "HTTP 500 for /smoke/broken/" in text
    assert "/static/nope.css: HTTP 404" in text


@pytest.mark.browser
def test_a_refused_page_and_a_healthy_console_page_pass(browser, live_server, smoke_urls, alice, monkeypatch):
    monkeypatch.setattr("config.smoke.EXTRA_PAGES", [])
    monkeypatch.setattr("config.smoke.call_api", lambda *args, **kwargs: None)
    report = Report()
    visit_as(browser, live_server.url, "alice", PASSWORD, ["/smoke/refused/", "/", "/segments/"], report)
    assert report.failures == [] and report.pages == 2
