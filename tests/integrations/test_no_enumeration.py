"""An id that does not exist and another workspace's id get the same answer, by any route: in a
body reference (400 naming the field) and in a URL (404). Nobody can tell Globex's ids from unused ones."""

import re

import pytest

from audiences.models import Segment
from integrations.connectors.kahuna.models import KahunaCampaign
from integrations.delivery.models import Destination
from integrations.models import Authorization
from integrations.sources.models import AmplitudeProject
from tests.conftest import key_client


def _workspace_objects(workspace, tag: str) -> dict:
    segment = Segment.objects.create(workspace=workspace, name=f"S {tag}", type="cohort", external_id=f"c-{tag}")
    kahuna = Destination.objects.create(workspace=workspace, kind="kahuna", name=f"K {tag}", config={})
    amplitude = Authorization(workspace=workspace, provider="amplitude", label=f"A {tag}")
    amplitude.set_secrets({"api_key": "k", "secret_key": "s"})
    amplitude.save()
    clevertap = Authorization(workspace=workspace, provider="clevertap", label=f"C {tag}", fields={"account_id": "X"})
    clevertap.set_secrets({"passcode": "p"})
    clevertap.save()
    return {
        "segment": segment,
        "destination": kahuna,
        "campaign": KahunaCampaign.objects.create(workspace=workspace, destination=kahuna, name="C", campaign_id="1"),
        "project": AmplitudeProject.objects.create(workspace=workspace, label=f"P {tag}", authorization=amplitude),
        "amplitude_auth": amplitude,
        "clevertap_auth": clevertap,
    }


@pytest.fixture
def objects(acme, globex):
    return _workspace_objects(acme, "acme"), _workspace_objects(globex, "globex")


# (endpoint, the referencing field, which kind of object it names, the rest of the body from acme's objects)
REFERENCES = [
    ("sync-jobs", "segment", "segment", lambda a: {"destination": a["destination"].pk, "cadence": "one_time"}),
    ("sync-jobs", "destination", "destination", lambda a: {"segment": a["segment"].pk, "cadence": "one_time"}),
    ("kahuna-exports", "segment", "segment", lambda a: {"campaign": a["campaign"].pk}),
    ("kahuna-exports", "campaign", "campaign", lambda a: {"segment": a["segment"].pk}),
    ("kahuna-campaigns", "destination", "destination", lambda a: {"name": "N", "campaign_id": "9"}),
    ("amplitude-projects", "authorization", "amplitude_auth", lambda a: {"label": "New", "region": "us"}),
    ("cohort-import-jobs", "project", "project", lambda a: {"label": "J", "cadence": "one_time"}),
    (
        "destinations",
        "authorization",
        "clevertap_auth",
        lambda a: {"kind": "clevertap", "name": "CT", "config": {"region": "eu1"}},
    ),
]


@pytest.mark.parametrize(("endpoint", "field", "kind", "rest"), REFERENCES)
def test_a_missing_id_and_another_workspaces_id_answer_alike(objects, acme_management_key, endpoint, field, kind, rest):
    acme_objects, globex_objects = objects
    client = key_client(acme_management_key)
    foreign = globex_objects[kind].pk
    missing = type(globex_objects[kind]).objects.order_by("-pk").first().pk + 1000
    answers = []
    for pk in (missing, foreign):
        response = client.post(f"/api/v1/{endpoint}/", {**rest(acme_objects), field: pk}, format="json")
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 400 and field in body["error"]["fields"]


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("segments", "segment"),
        ("destinations", "destination"),
        ("kahuna-campaigns", "campaign"),
        ("amplitude-projects", "project"),
    ],
)
def test_urls_answer_alike_for_missing_and_foreign_ids(objects, acme_management_key, endpoint, kind):
    client = key_client(acme_management_key)
    foreign = objects[1][kind].pk
    missing = type(objects[1][kind]).objects.order_by("-pk").first().pk + 1000
    answers = [client.get(f"/api/v1/{endpoint}/{pk}/") for pk in (missing, foreign)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].content == answers[1].content


def test_console_pages_answer_alike_for_missing_and_foreign_ids(client, alice, objects):
    client.force_login(alice)
    foreign = objects[1]["segment"].pk
    answers = [client.get(f"/segments/{pk}/") for pk in (foreign + 1000, foreign)]
    assert [a.status_code for a in answers] == [404, 404]
    # The branded 404 carries the shell (its sign-out form): CSRF tokens are masked afresh on every
    # answer, whatever the id, so they are set aside; everything else must be the same bytes.
    assert _without_csrf(answers[0].content) == _without_csrf(answers[1].content)
    assert b"This page does not exist" in answers[0].content


def _without_csrf(content: bytes) -> bytes:
    content = re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)
    return re.sub(rb"\['X-CSRFToken'\] = '[^']+'", b"", content)


def test_a_reference_of_this_workspace_still_works(objects, acme_management_key):
    acme_objects, _ = objects
    response = key_client(acme_management_key).post(
        "/api/v1/sync-jobs/",
        {"segment": acme_objects["segment"].pk, "destination": acme_objects["destination"].pk, "cadence": "one_time"},
        format="json",
    )
    assert response.status_code == 201, response.json()
