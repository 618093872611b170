from __future__ import annotations

import json

import pytest

from airflow_voicetrack.constants import MAX_TOKEN_REFRESHES
from airflow_voicetrack.exceptions import VoiceTrackAPIError, VoiceTrackAuthError, VoiceTrackError
from airflow_voicetrack.protocol import (
    Call,
    Request,
    Response,
    RetryPolicy,
    error_from_response,
    parse_message,
)

SECRET = "app-secret-value"
TOKEN = "tok-abcdef-123"


def test_error_body_is_mapped_to_typed_fields():
    body = {"code": "400000000", "developerMessage": "Validation Error!", "properties": {"size": "too big"}}
    error = error_from_response(Response(400, {}, json.dumps(body).encode()), "POST /voice/tracking")
    assert isinstance(error, VoiceTrackAPIError) and isinstance(error, VoiceTrackError)
    assert (error.status_code, error.code, error.developer_message) == (400, "400000000", "Validation Error!")
    assert error.properties == {"size": "too big"}
    assert (
        str(error) == "POST /voice/tracking: HTTP 400 code 400000000: Validation Error! {'size': 'too big'}"
    )


def test_body_that_is_not_json_still_gives_the_status():
    error = error_from_response(Response(409, {}, b"<html>conflict</html>"), "GET /x")
    assert (error.status_code, error.code, str(error)) == (409, "", "GET /x: HTTP 409")


def test_token_endpoint_error_body_is_read():
    body = b'{"error": "invalid_request", "error_description": "grant_type missing"}'
    error = error_from_response(Response(400, {}, body), "POST /oauth/token")
    assert (error.code, error.developer_message) == ("invalid_request", "grant_type missing")


@pytest.mark.parametrize(("status", "reason"), [(401, "credentials"), (403, "permissions")])
def test_auth_errors_say_what_is_at_fault(status, reason):
    error = error_from_response(Response(status, {}, b"{}"), "GET /x")
    assert isinstance(error, VoiceTrackAuthError) and error.reason == reason


def test_secrets_echoed_by_the_server_are_redacted():
    body = {"code": "401000000", "developerMessage": f"bad token {TOKEN}", "properties": {"secret": SECRET}}
    c = Call(Request("GET", "http://h/x"), parse_message, RetryPolicy(), started=0, secrets=[SECRET, TOKEN])
    c.refreshes = MAX_TOKEN_REFRESHES
    with pytest.raises(VoiceTrackAuthError) as info:
        c.on_response(Response(401, {}, json.dumps(body).encode()), now=0)
    assert SECRET not in str(info.value) and TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_transport_error_text_is_redacted():
    c = Call(
        Request("GET", "http://h/x"), parse_message, RetryPolicy(max_retries=0), started=0, secrets=[TOKEN]
    )
    with pytest.raises(VoiceTrackError) as info:
        c.on_transport_error("timeout", f"header Bearer {TOKEN} timed out", now=0)
    assert TOKEN not in str(info.value)
