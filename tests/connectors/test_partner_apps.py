"""Kahuna and Kochava each have one home (integrations/connectors/<kind>/, a Django app) that the
registry wires in; their models moved there from the campaigns app without touching a table."""

import datetime as dt

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from config.api_urls import router
from config.scheduler import DISPATCHERS
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport
from integrations.connectors.kochava.models import KochavaEventOutcome, KochavaStream, KochavaUserLink
from integrations.connectors.registry import (
    CONNECTORS,
    PARTNER_APPS,
    PARTNER_DISPATCHERS,
    api_routes,
    destination_section,
    segment_actions,
)
from integrations.delivery.models import Destination
from tests.delivery.helpers import make_segment

# What main had before the move: the five models in the campaigns app, their tables made by its 0001-0002.
AT_MAIN = [("campaigns", "0002_kochava_link_status"), ("kahuna", None), ("kochava", None)]
MOVED = {
    "kahunacampaign": "kahuna",
    "kahunaexport": "kahuna",
    "kochavastream": "kochava",
    "kochavaeventoutcome": "kochava",
    "kochavauserlink": "kochava",
}


def test_each_partner_app_is_wired_in_by_the_registry():
    assert PARTNER_APPS == ("integrations.connectors.kahuna", "integrations.connectors.kochava")
    assert {CONNECTORS[kind].app for kind in ("kahuna", "kochava")} == set(PARTNER_APPS)
    assert all(app in settings.INSTALLED_APPS for app in PARTNER_APPS)
    assert [apps.get_app_config(label).name for label in ("kahuna", "kochava")] == list(PARTNER_APPS)
    assert set(PARTNER_DISPATCHERS) <= set(DISPATCHERS)
    assert all(callable(import_string(path)) for path in PARTNER_DISPATCHERS)
    registered = {prefix for prefix, _viewset, _basename in router.registry}
    assert {prefix for prefix, _viewset, _basename in api_routes()} == {
        "kahuna-campaigns",
        "kahuna-exports",
        "kochava-streams",
    } and {"kahuna-campaigns", "kahuna-exports", "kochava-streams"} <= registered
    # The console keeps its URL names and paths for the partner pages.
    assert reverse("console:export-to-kahuna", args=[3]) == "/segments/3/export-to-kahuna/"
    assert reverse("console:kahuna-campaigns-refresh", args=[4]) == "/destinations/4/kahuna-campaigns/refresh/"
    assert segment_actions() == [("Export to Kahuna", "console:export-to-kahuna")]


@pytest.mark.django_db
def test_a_destination_page_adds_its_partners_section_only(acme):
    assert destination_section(Destination(workspace=acme, kind="list_api")) == {}
    kahuna = Destination.objects.create(workspace=acme, kind="kahuna", name="K", config={})
    assert destination_section(kahuna)["partner_template"] == "kahuna/destination.html"


@pytest.mark.django_db(transaction=True)
def test_a_database_migrated_at_the_campaigns_app_migrates_forward_with_its_rows(acme):
    """Migrate back to main's state (the models in campaigns, their content types there), write rows
    as main's models would, then forward: every row is read through the new apps' models, and the
    content types moved with their ids (admin history and permissions follow)."""
    kahuna_dest = Destination.objects.create(workspace=acme, kind="kahuna", name="Kahuna", config={})
    kochava_dest = Destination.objects.create(workspace=acme, kind="kochava", name="Kochava", config={})
    segment = make_segment(acme)
    executor = MigrationExecutor(connection)
    executor.migrate(AT_MAIN)
    old = executor.loader.project_state(AT_MAIN[0]).apps
    old_types = {}
    for model, app in MOVED.items():  # the content types as main's post_migrate left them
        ContentType.objects.filter(app_label=app, model=model).delete()
        old_types[model] = ContentType.objects.get_or_create(app_label="campaigns", model=model)[0].pk
    campaign = old.get_model("campaigns", "KahunaCampaign").objects.create(
        workspace_id=acme.pk, destination_id=kahuna_dest.pk, name="Win back", campaign_id="c-1", environment="p"
    )
    old.get_model("campaigns", "KahunaExport").objects.create(
        workspace_id=acme.pk, segment_id=segment.pk, campaign_id=campaign.pk, environment="p", users_sent=3
    )
    stream = old.get_model("campaigns", "KochavaStream").objects.create(
        workspace_id=acme.pk, destination_id=kochava_dest.pk, last_event_id=41, events_sent=40
    )
    old.get_model("campaigns", "KochavaEventOutcome").objects.create(
        stream_id=stream.pk, event_id=7, status="skipped", reason="no device"
    )
    old.get_model("campaigns", "KochavaUserLink").objects.create(
        workspace_id=acme.pk,
        destination_id=kochava_dest.pk,
        profile_id=5,
        kochava_device_id="dev-5",
        identities={"User ID": "u5"},
        next_attempt_at=timezone.now() + dt.timedelta(minutes=1),
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    export = KahunaExport.objects.select_related("campaign", "segment").get()
    assert (export.campaign.name, export.campaign.destination_id, export.segment_id, export.users_sent) == (
        "Win back",
        kahuna_dest.pk,
        segment.pk,
        3,
    )
    assert KahunaCampaign.objects.get().pk == campaign.pk
    moved_stream = KochavaStream.objects.get(destination=kochava_dest)
    assert (moved_stream.last_event_id, moved_stream.events_sent) == (41, 40)
    assert KochavaEventOutcome.objects.get().stream_id == moved_stream.pk
    assert KochavaUserLink.objects.get().identities == {"User ID": "u5"}
    for model, app in MOVED.items():
        assert ContentType.objects.get(app_label=app, model=model).pk == old_types[model]
        assert not ContentType.objects.filter(app_label="campaigns", model=model).exists()
