from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.defaults import page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.metrics import metrics
from integrations.api_errors import json_error
from integrations.health import healthz
from integrations.inbound import urls as inbound_urls

# The admin is django-unfold: its brand (name, mark, colours, the way back to the console) is UNFOLD in settings.
admin.site.site_header = "Cohort Console"
admin.site.site_title = "Cohort Console admin"


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask /favicon.ico on pages that name none (the admin, the API docs)."""
    return redirect(static("console/favicon.svg"), permanent=True)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/amplitude/", include(inbound_urls.amplitude_urlpatterns)),
    path("v1/", include(inbound_urls.segment_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("console.urls")),
]


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(("/api/", "/v1/")):
        return json_error(404, "not_found", "Not found.")
    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(("/api/", "/v1/")):
        return json_error(500, "server_error", "An internal error occurred; it has been logged.")
    return server_error(request)
