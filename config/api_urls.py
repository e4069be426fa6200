"""The management REST API under /api/v1/: one router, each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from audiences import api as audiences_api
from audiences import erasure_api
from campaigns import api as campaigns_api
from integrations import api as integrations_api
from integrations.connectors.registry import api_routes
from integrations.delivery import api as delivery_api
from integrations.inbound import api as inbound_api
from integrations.sources import api as sources_api

router = DefaultRouter(trailing_slash="/?")
router.register("workspace", integrations_api.WorkspaceViewSet, basename="workspace")
router.register("authorizations", integrations_api.AuthorizationViewSet, basename="authorization")
router.register("api-keys", integrations_api.ApiKeyViewSet, basename="api-key")
router.register("segments", audiences_api.SegmentViewSet, basename="segment")
router.register("profiles", audiences_api.ProfileViewSet, basename="profile")
router.register("erasures", erasure_api.ErasureViewSet, basename="erasure")
router.register("inbound-batches", inbound_api.InboundBatchViewSet, basename="inbound-batch")
for prefix, viewset, basename in api_routes():  # the partners' own resources
    router.register(prefix, viewset, basename=basename)
router.register("destinations", delivery_api.DestinationViewSet, basename="destination")
router.register("sync-jobs", delivery_api.SyncJobViewSet, basename="sync-job")
router.register("sync-runs", delivery_api.SyncRunViewSet, basename="sync-run")
router.register("amplitude-projects", sources_api.AmplitudeProjectViewSet, basename="amplitude-project")
router.register("cohort-import-jobs", sources_api.CohortImportJobViewSet, basename="cohort-import-job")
router.register("event-import-jobs", sources_api.EventImportJobViewSet, basename="event-import-job")
router.register("import-runs", sources_api.ImportRunViewSet, basename="import-run")
router.register("campaigns", campaigns_api.CampaignViewSet, basename="campaign")

urlpatterns = router.urls
