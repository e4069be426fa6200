from django.contrib.auth import views as auth_views
from django.urls import path

from console.views import campaigns, dashboard, destinations, erasure, people, segments, settings, setup, sources, syncs
from integrations.connectors.registry import console_urlpatterns

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.dashboard, name="dashboard"),
    path("workspace/switch/", settings.switch_workspace, name="switch-workspace"),
    path("settings/api-keys/", settings.api_keys, name="api-keys"),
    path("settings/api-keys/<int:pk>/revoke/", settings.revoke_api_key, name="revoke-api-key"),
    path("settings/authorizations/", settings.authorizations, name="authorizations"),
    path("settings/authorizations/<int:pk>/", settings.authorization_edit, name="authorization-edit"),
    path("settings/amplitude-setup/", settings.amplitude_setup, name="amplitude-setup"),
    path("settings/ask/", setup.ask_setup, name="ask-setup"),
    path("settings/requests/<int:pk>/done/", setup.setup_request_done, name="setup-request-done"),
    path("sources/", sources.source_list, name="sources"),
    path("sources/<int:pk>/", sources.source_detail, name="source"),
    path("sources/<int:pk>/test/", sources.test_connection, name="source-test"),
    path("sources/<int:pk>/edit/", sources.source_edit, name="source-edit"),
    path("sources/<int:pk>/delete/", sources.source_delete, name="source-delete"),
    path("sources/jobs/<str:kind>/<int:pk>/run/", sources.run_job_now, name="run-job"),
    path("sources/runs/<int:pk>/retry/", sources.retry_import_run, name="retry-import-run"),
    path("segments/", segments.segment_list, name="segments"),
    path("segments/<int:pk>/", segments.segment_detail, name="segment"),
    path("segments/<int:pk>/members.csv", segments.segment_members_csv, name="segment-members-csv"),
    path("destinations/", destinations.destination_list, name="destinations"),
    path("destinations/new/<str:kind>/", destinations.destination_new, name="destination-new"),
    path("destinations/<int:pk>/", destinations.destination_detail, name="destination"),
    path("destinations/<int:pk>/edit/", destinations.destination_edit, name="destination-edit"),
    path("destinations/<int:pk>/test/", destinations.destination_test, name="destination-test"),
    path("destinations/<int:pk>/delete/", destinations.destination_delete, name="destination-delete"),
    path("syncs/", syncs.sync_list, name="syncs"),
    path("syncs/new/", syncs.sync_new, name="sync-new"),
    path("syncs/<int:pk>/", syncs.sync_detail, name="sync"),
    path("syncs/<int:pk>/progress/", syncs.sync_progress, name="sync-progress"),
    path("syncs/<int:pk>/<slug:action>/", syncs.sync_action, name="sync-action"),
    path("campaigns/", campaigns.campaign_list, name="campaigns"),
    path("campaigns/new/", campaigns.campaign_new, name="campaign-new"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign"),
    path("campaigns/<int:pk>/progress/", campaigns.campaign_progress, name="campaign-progress"),
    path("campaigns/<int:pk>/edit/", campaigns.campaign_edit, name="campaign-edit"),  # before the actions
    path("campaigns/<int:pk>/<slug:action>/", campaigns.campaign_action, name="campaign-action"),
    path("people/", people.find_people, name="find-people"),
    path("people/search/", people.person_search, name="person-search"),
    path("people/<int:pk>/", people.person_detail, name="person"),
    path("people/<int:pk>/erase/", erasure.person_erase, name="person-erase"),
    path("erasures/", erasure.erasure_list, name="erasures"),
    path("erasures/<int:pk>/", erasure.erasure_detail, name="erasure"),
    *console_urlpatterns(),  # the partners' own pages (integrations.connectors.registry)
]
