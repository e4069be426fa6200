"""Sources (Amplitude projects) are changed and deleted in the console by owners and ops; marketers
and viewers read their settings, disabled, and may not post. Against the real sandbox Amplitude."""

import pytest

from integrations.models import Authorization
from integrations.sources.models import AmplitudeCohort, AmplitudeProject, CohortImportJob
from tests.console.test_source_pages import amp, connect  # noqa: F401  (fixture)


@pytest.fixture
def project(client, alice, acme, amp):  # noqa: F811
    client.force_login(alice)
    assert connect(client, amp).status_code == 302
    client.logout()
    return AmplitudeProject.objects.get(workspace=acme)


def edit(client, project, **changes):
    data = {"label": project.label, "description": "", "region": project.region, "base_url": project.base_url}
    return client.post(f"/sources/{project.pk}/edit/", {**data, **changes})


@pytest.mark.parametrize("who", ["alice", "oscar"])
def test_owners_and_ops_edit_and_delete_a_project(client, request, acme, project, amp, who):  # noqa: F811
    client.force_login(request.getfixturevalue(who))
    page = client.get(f"/sources/{project.pk}/").content.decode()
    assert f'href="/sources/{project.pk}/edit/"' in page and f'href="/sources/{project.pk}/delete/"' in page
    form = client.get(f"/sources/{project.pk}/edit/").content.decode()
    assert "disabled" not in form and amp.auth[1] not in form and amp.auth[0] not in form  # keys never shown

    renamed = edit(client, project, label="Music app (prod)")
    assert renamed.status_code == 302, renamed.content.decode()[:2000]
    project.refresh_from_db()
    assert project.label == "Music app (prod)" and project.authorization.secrets["secret_key"] == amp.auth[1]

    CohortImportJob.objects.create(workspace=acme, project=project, label="Fans")
    assert client.get(f"/sources/{project.pk}/delete/").status_code == 200
    deleted = client.post(f"/sources/{project.pk}/delete/")
    assert deleted.status_code == 302
    assert not AmplitudeProject.objects.exists() and not CohortImportJob.objects.exists()
    assert not AmplitudeCohort.objects.exists() and not Authorization.objects.exists()  # its own keys go too


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_marketers_and_viewers_read_a_project_but_cannot_change_it(client, request, project, who):
    client.force_login(request.getfixturevalue(who))
    page = client.get(f"/sources/{project.pk}/").content.decode()
    assert f'href="/sources/{project.pk}/delete/"' not in page and "Read-only" in page
    form = client.get(f"/sources/{project.pk}/edit/")
    assert form.status_code == 200 and "disabled" in form.content.decode()
    assert "Save project" not in form.content.decode()
    assert edit(client, project, label="Hijacked").status_code == 403
    assert client.get(f"/sources/{project.pk}/delete/").status_code == 403
    assert client.post(f"/sources/{project.pk}/delete/").status_code == 403
    project.refresh_from_db()
    assert project.label == "Music app"


def test_new_keys_are_tested_before_they_replace_the_saved_ones(client, alice, project, amp):  # noqa: F811
    client.force_login(alice)
    wrong = edit(client, project, api_key=amp.auth[0], secret_key="not-the-secret")
    assert wrong.status_code == 400 and "The connection test failed" in wrong.content.decode()
    assert "not-the-secret" not in wrong.content.decode()
    project.refresh_from_db()
    assert project.authorization.secrets["secret_key"] == amp.auth[1]  # nothing saved
    # The host moved (EU region, no override): the keys must be typed again before anything is sent.
    moved = edit(client, project, region="eu", base_url="")
    assert moved.status_code == 400 and "Enter it again" in moved.content.decode()
