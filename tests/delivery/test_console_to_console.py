"""A List API destination pointed at another Cohort Console's inbound endpoint works end to end."""

import pytest

from audiences.models import Identity, SegmentMember
from integrations.delivery.models import RunStatus
from integrations.models import ApiKey
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, remove_members, sync


@pytest.mark.django_db(transaction=True)
def test_acme_syncs_a_segment_into_globexs_console(acme, globex, live_server):
    _, inbound_key = ApiKey.issue(globex, scope="inbound", name="from acme")
    segment = make_segment(acme, name="Cart Drop off", external_id="1638361188")
    profiles = make_profiles(acme, range(8))
    add_members(segment, profiles)
    dest = destination(
        acme,
        "list_api",
        {"base_url": f"{live_server.url}/api/amplitude", "batch_size": 3},
        secrets={"api_key": inbound_key},
    )
    job = job_for(segment, dest, device_id_kind="")
    first = sync(job)
    assert first.status == RunStatus.SUCCEEDED, first.error
    remove_members(segment, profiles[:2])
    second = sync(job)
    assert (second.status, second.to_remove) == (RunStatus.SUCCEEDED, 2), second.error

    members = SegmentMember.objects.filter(segment__workspace=globex)
    received = set(
        Identity.objects.filter(workspace=globex, kind="user_id", profile__memberships__in=members).values_list(
            "value", flat=True
        )
    )
    assert received == {f"u{i}" for i in range(2, 8)}
