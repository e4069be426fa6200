"""The production smoke (python3 dev.py smoke) finds its pages in the URL conf: every console page
with ids in its URL must have a filler, or the smoke could not visit it."""

from config.smoke import console_routes, unfillable


def test_every_console_page_with_parameters_can_be_filled():
    assert unfillable() == []


def test_a_page_without_a_filler_is_reported():
    routes = dict(console_routes())
    assert routes["console:segment"] == ["pk"] and routes["console:dashboard"] == []
    assert "console:segment" in unfillable({}) and "console:dashboard" not in unfillable({})
