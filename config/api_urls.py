"""The management REST API under /api/v1/: one router, each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from integrations import api as integrations_api

router = DefaultRouter(trailing_slash="/?")
router.register("workspace", integrations_api.WorkspaceViewSet, basename="workspace")
router.register("authorizations", integrations_api.AuthorizationViewSet, basename="authorization")
router.register("api-keys", integrations_api.ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
