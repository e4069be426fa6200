"""The shell (navigation from one list, error pages, the admin's brand) and moments written one way in
the workspace's zone (issue 19.2, 19.5, 19.7)."""

import datetime as dt

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from console import timefmt, words
from console.nav import NAV

JULY = dt.datetime(2026, 7, 1, 4, 0, tzinfo=dt.UTC)
DECEMBER = dt.datetime(2026, 12, 4, 5, 0, 15, tzinfo=dt.UTC)


def test_a_moment_is_written_in_the_active_zone_with_its_label():
    with timezone.override("Europe/Berlin"):
        assert timefmt.when(DECEMBER) == "4 Dec 2026, 06:00 CET"
        assert timefmt.when(JULY) == "1 Jul 2026, 06:00 CEST"  # summer time: still 06:00, labelled
        assert timefmt.when(DECEMBER, seconds=True) == "4 Dec 2026, 06:00:15 CET"
        assert timefmt.day(DECEMBER, short=True) == "Fri 4 Dec"
    with timezone.override("America/New_York"):
        assert timefmt.when(DECEMBER) == "4 Dec 2026, 00:00 EST"
        assert timefmt.when(DECEMBER, tz_name="Europe/Berlin") == "4 Dec 2026, 06:00 CET"
    with timezone.override("Asia/Kolkata"):
        assert timefmt.when(DECEMBER) == "4 Dec 2026, 10:30 IST"
    assert timefmt.when(None) == "" and timefmt.ago(None) == ""


def test_pages_use_the_workspace_zone_and_the_admin_says_which(client, alice, acme, django_user_model):
    acme.timezone = "Asia/Tokyo"
    acme.save(update_fields=["timezone"])
    django_user_model.objects.filter(pk=alice.pk).update(is_staff=True, is_superuser=True)
    client.force_login(alice)
    page = client.get("/syncs/").content.decode()
    assert "times in Asia/Tokyo" in page
    admin = client.get("/admin/").content.decode()
    assert "Cohort Console" in admin and "times in Asia/Tokyo" in admin and "Open the console" in admin


def test_words_for_stored_values():
    assert words.import_counts({"rows_read": 900, "profiles_created": 1, "skipped": 0, "skipped_reasons": {}}) == [
        "900 rows read",
        "1 new person",
    ]
    assert words.import_counts({"skipped": 3, "skipped_reasons": {"no user id": 2, "bad time": 1}}) == [
        "3 rows skipped (2 no user id, 1 bad time)"
    ]
    assert words.property_value({"Power Users": True}) == "Power Users: yes"
    assert words.property_value(["a", "b"]) == "a, b"
    with timezone.override("Europe/Berlin"):
        assert words.property_value("2026-12-04T05:00:00+00:00") == "4 Dec 2026, 06:00 CET"
    assert words.field_label("base_url", "Base url") == "Partner address (base URL)"
    assert words.field_label("list_id_path", "List id path") != "List id path"
    assert words.field_label("region", "Region of the account") == "Region of the account"
    assert words.cause("import_run", 3) == "import run #3"


@pytest.mark.parametrize(
    ("role", "has_erasures", "has_admin"),
    [("alice", True, False), ("oscar", True, True), ("bob", False, False), ("vera", False, False)],
)
def test_the_menu_comes_from_one_list_and_marks_the_current_page(client, acme, request, role, has_erasures, has_admin):
    client.force_login(request.getfixturevalue(role))
    response = client.get("/destinations/")
    html = response.content.decode()
    assert html.count('aria-current="page"') == 1 and 'aria-current="page">Destinations</a>' in html
    labels = [item.label for item in response.context["nav_main"] + response.context["nav_settings"]]
    assert labels == [
        entry.label
        for entry in NAV
        if (entry.needs != "can_manage_credentials" or has_erasures) and (entry.needs != "staff" or has_admin)
    ]
    assert ("Erasures" in labels) == has_erasures and ("Admin (ops)" in labels) == has_admin
    settings_page = client.get("/settings/api-keys/").content.decode()
    assert '<summary class="current">Settings</summary>' in settings_page


def test_branded_error_pages(client, bob, acme):
    client.force_login(bob)
    missing = client.get("/segments/987654/")
    assert missing.status_code == 404 and "This page does not exist" in missing.content.decode()
    assert "Cohort Console" in missing.content.decode()
    refused = client.get("/erasures/")
    assert refused.status_code == 403 and 'id="error-page"' in refused.content.decode()
    # The 500 page renders with no request at all (the error may be in what a request needs).
    server_error = render_to_string("500.html")
    assert "Something went wrong on our side" in server_error and "console/app" in server_error
