"""What a locked-out sign-in gets (django-axes calls this; settings.AXES_LOCKOUT_CALLABLE)."""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render

from integrations.api_errors import json_error


def locked_out(request, original_response=None, credentials=None) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        "Too many failed sign-ins for this account or from this address. "
        f"Try again in {minutes} minutes, or ask an operator to unlock it."
    )
    headers = {"Retry-After": str(int(settings.AXES_COOLOFF_TIME.total_seconds()))}
    if request.path.startswith(("/api/", "/v1/")):
        return json_error(429, "locked_out", message, headers=headers)
    response = render(request, "console/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = headers["Retry-After"]
    return response
