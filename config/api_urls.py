"""The management REST API under /api/v1/: one router, each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from integrations import api as integrations_api
from integrations.sources import api as sources_api

router = DefaultRouter(trailing_slash="/?")
router.register("workspace", integrations_api.WorkspaceViewSet, basename="workspace")
router.register("authorizations", integrations_api.AuthorizationViewSet, basename="authorization")
router.register("api-keys", integrations_api.ApiKeyViewSet, basename="api-key")
router.register("amplitude-projects", sources_api.AmplitudeProjectViewSet, basename="amplitude-project")
router.register("cohort-import-jobs", sources_api.CohortImportJobViewSet, basename="cohort-import-job")
router.register("event-import-jobs", sources_api.EventImportJobViewSet, basename="event-import-job")
router.register("import-runs", sources_api.ImportRunViewSet, basename="import-run")

urlpatterns = router.urls
