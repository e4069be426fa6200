"""Inbound URLs: Amplitude's partner contract under /api/amplitude/, Segment's HTTP API under /v1/.

Trailing slashes are optional: senders are configured by hand and both spellings occur.
"""

from django.urls import re_path

from integrations.inbound import views

amplitude_urlpatterns = [
    re_path(r"^lists/?$", views.lists, name="inbound-lists"),
    re_path(r"^lists/(?P<list_id>\d+)/add/?$", views.list_add, name="inbound-list-add"),
    re_path(r"^lists/(?P<list_id>\d+)/remove/?$", views.list_remove, name="inbound-list-remove"),
    re_path(r"^identify/?$", views.amplitude_identify, name="inbound-amplitude-identify"),
    re_path(r"^cohort-webhook/?$", views.amplitude_cohort_webhook, name="inbound-cohort-webhook"),
]

segment_urlpatterns = [
    re_path(rf"^{name}/?$", view, name=f"inbound-v1-{name}") for name, view in views.v1_views.items()
]
