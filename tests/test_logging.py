import logging

import pytest

from config.logging import SecretScrubFilter, scrub
from tests.conftest import key_client


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer ccm_abcdefghijklmnopqrstuvwxyz012345",
        "headers={'Authorization': 'Basic Y2NpX3NlY3JldDo='}",
        "got api_key=cci_abcdefghijklmnopqrstuvwxyz",
        '{"passcode": "hunter2-passcode"}',
        "X-CleverTap-Passcode: hunter2-passcode",
        "password=hunter2-passcode",
        "token gAAAAABlZXhhbXBsZS1mZXJuZXQtdG9rZW4tdmFsdWU=",
    ],
)
def test_scrub_removes_secrets(line):
    cleaned = scrub(line)
    for secret in ("ccm_abcdefghijklmnop", "Y2NpX3NlY3JldDo", "cci_abcdefghijklmnop", "hunter2", "gAAAAABlZXhh"):
        assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_filter_scrubs_arguments_and_tracebacks():
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "calling with %s", ("api_key=cci_secretsecretsecret123",), None
    )
    try:
        raise ValueError("password=topsecret-value")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    SecretScrubFilter().filter(record)
    assert "cci_secretsecret" not in record.getMessage()
    assert "topsecret-value" not in record.exc_text


def test_request_logs_never_contain_the_raw_key(caplog, acme, acme_management_key):
    caplog.set_level(logging.DEBUG)
    handler_filter = SecretScrubFilter()
    key_client(acme_management_key).get("/api/v1/authorizations/does-not-exist/")
    for record in caplog.records:
        handler_filter.filter(record)
        assert acme_management_key not in record.getMessage()


def test_request_id_header_is_set_and_echoed(client, db):
    response = client.get("/login/", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
    assert len(client.get("/login/", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]) == 32


def test_error_page_filter_hides_authorization_header(rf):
    from config.logging import SecretSafeExceptionReporterFilter

    request = rf.get("/", HTTP_AUTHORIZATION="Bearer ccm_leaky", HTTP_API_KEY="cci_leaky")
    meta = SecretSafeExceptionReporterFilter().get_safe_request_meta(request)
    assert "ccm_leaky" not in str(meta) and "cci_leaky" not in str(meta)


def test_json_formatter_emits_one_json_object_with_request_id():
    import json

    from django.conf import settings
    from pythonjsonlogger.json import JsonFormatter

    from config.logging import RequestIdFilter

    config = settings.LOGGING["formatters"]["json"]
    formatter = JsonFormatter(config["fmt"], rename_fields=config["rename_fields"])
    record = logging.LogRecord("cohort", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    RequestIdFilter().filter(record)
    SecretScrubFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "hello world" and line["level"] == "INFO" and line["request_id"] == "-"
