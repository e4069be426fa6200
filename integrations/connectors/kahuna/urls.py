"""Kahuna's console pages, joined to the console's URLs (namespace "console") by the registry."""

from django.urls import path

from integrations.connectors.kahuna import views

urlpatterns = [
    path("segments/<int:pk>/export-to-kahuna/", views.export_to_kahuna, name="export-to-kahuna"),
    path(
        "destinations/<int:pk>/kahuna-campaigns/refresh/",
        views.refresh_kahuna_campaigns,
        name="kahuna-campaigns-refresh",
    ),
]
