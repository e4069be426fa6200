"""Every API error is JSON: {"error": {"code": machine code, "message": human text, "fields": {...}}}.

Shared by the management API (DRF's EXCEPTION_HANDLER), the inbound endpoints and the 404/500
handlers config/urls.py installs for /api/ and /v1/.
"""

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.params import BadParameter


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def json_error(status_code: int, code: str, message: str, fields: dict | None = None, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, fields), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten(detail) -> dict:
    if isinstance(detail, dict):
        return {
            key: [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {}


def json_exception_handler(exc, context) -> Response | None:
    if isinstance(exc, BadParameter):  # a query parameter that is not what it must be
        fields = {exc.name: [exc.message]}
        return Response(error_body("invalid", f"{exc.name}: {exc.message}", fields), status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(exc.detail, list):
            message = "; ".join(str(item) for item in exc.detail)
        else:
            message = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in fields.items())
        response.data = error_body("invalid", message or "Invalid input.", fields)
    elif isinstance(exc, Http404 | exceptions.NotFound):
        response.data = error_body("not_found", "Not found.")
    else:
        code = getattr(exc, "default_code", "error")
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", code) or code
        response.data = error_body(str(code), str(detail))
    return response


def not_found_json(request, exception=None) -> Response:
    """handler404 for API paths, so even an unknown URL under /api/ answers JSON."""
    return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
