"""Browser: ops finds a person by an identity, erases them and reads each destination's outcome;
a marketer sees no erase button and is refused the erase page."""

import re

from playwright.sync_api import expect

from audiences.models import Erasure, Identity, Profile
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync


def test_ops_erases_a_person_and_sees_what_each_destination_answered(page, oscar, acme, partners):  # noqa: F811
    clevertap = partners("clevertap", account_id="ACC-B", passcode="pass-b")
    dest = destination(
        acme,
        "clevertap",
        {"base_url": clevertap.base_url},
        secrets={"passcode": "pass-b"},
        fields={"account_id": "ACC-B"},
        name="CleverTap EU",
    )
    segment = make_segment(acme, name="Churn risk")
    people = make_profiles(acme, range(1, 4))
    add_members(segment, people)
    assert sync(job_for(segment, dest)).delivered == 3
    destination(acme, "list_api", {"base_url": "http://127.0.0.1:9/never"}, secrets={"api_key": "k"}, name="Lists")

    sign_in(page, "oscar", PASSWORD)
    page.fill("#person-q", "u2")
    page.press("#person-q", "Enter")
    expect(page.get_by_role("heading", name=f"Person #{people[1]}")).to_be_visible()
    page.get_by_role("link", name="Erase this person").click()
    expect(page.get_by_role("heading", name=f"Erase person #{people[1]}?")).to_be_visible()
    expect(page.locator("table")).to_contain_text("d2")
    page.get_by_role("button", name="Erase this person").click()

    erasure = Erasure.objects.get(workspace=acme)
    expect(page.get_by_role("heading", name=f"Erasure #{erasure.pk}")).to_be_visible()
    expect(page.get_by_text("Asked by oscar")).to_be_visible()
    rows = page.locator("table").first
    expect(rows).to_contain_text("CleverTap EU")
    expect(rows).to_contain_text("deleted")
    expect(rows).to_contain_text("Lists")
    expect(rows).to_contain_text("never sent")
    # Whole tokens: a random CSRF token may contain "u2" by chance.
    words = set(re.findall(r"[A-Za-z0-9_-]+", page.inner_text("body")))
    assert "u2" not in words and "d2" not in words
    screenshot(page, "erasure-result")
    assert not Profile.objects.filter(pk=people[1]).exists() and not Identity.objects.filter(value="u2").exists()
    assert clevertap.fake.find("/1/delete/profiles.json")[0]["body"] == {"identity": ["u2"]}

    page.get_by_text("Settings", exact=True).click()  # the setup pages sit in the Settings menu
    page.get_by_role("link", name="Erasures", exact=True).first.click()
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr")).to_contain_text("oscar")


def test_a_marketer_cannot_erase(page, bob, acme):
    [person] = make_profiles(acme, range(1, 2))
    sign_in(page, "bob", PASSWORD)
    page.goto(f"/people/{person}/")
    expect(page.get_by_role("heading", name=f"Person #{person}")).to_be_visible()
    expect(page.get_by_role("link", name="Erase this person")).to_have_count(0)
    response = page.goto(f"/people/{person}/erase/")
    assert response.status == 403
    expect(page.get_by_text("Only owners and ops can erase people")).to_be_visible()
    assert Profile.objects.filter(pk=person).exists()
