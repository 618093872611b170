"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_voicetrack import __version__
from airflow_voicetrack.constants import (
    DEFAULT_API_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_TIME,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TOKEN_URL,
    DEFAULT_WINDOW_HOURS,
    MAX_PAGE_SIZE,
)

INTEGRATION = "Routee Voice Tracking"
#: The defaults the hook applies to an empty extra (from ``constants``), shown in the descriptions.
_DEFAULTS: dict[str, Any] = {
    "auth_url": DEFAULT_TOKEN_URL,
    "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
    "read_timeout": DEFAULT_READ_TIMEOUT,
    "request_deadline": DEFAULT_REQUEST_DEADLINE,
    "verify_ssl": True,
    "allow_insecure_http": False,
    "page_size": MAX_PAGE_SIZE,
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
    "max_retries": DEFAULT_MAX_RETRIES,
    "max_retry_wait": DEFAULT_MAX_RETRY_WAIT,
    "max_retry_time": DEFAULT_MAX_RETRY_TIME,
    "window_hours": DEFAULT_WINDOW_HOURS,
}


#: The schema of a true/false extra. A choice rather than a switch: an untouched switch shows "off"
#: (verify_ssl's default is on) and a switch with a default is stored in every connection. Empty =
#: the default.
_BOOLEAN_CHOICE: dict[str, Any] = {"type": ["string", "null"], "enum": ["true", "false"]}


def _default(name: str) -> Any:
    """:return: the default of the extra ``name``, as the hook applies it, for a description."""
    value = _DEFAULTS[name]
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else value


def connection_fields() -> dict[str, Any]:
    """
    The connection form's extra fields.

    None pre-fills a value: Airflow would store a pre-filled value in every saved connection, which
    would then keep it after a later release changes the default. Empty fields are stored as null
    and the hook applies the default, which each description shows.
    """
    return {
        "auth_url": {
            # Not "token_url": Airflow's secrets masker hides every extra whose name holds "token".
            "label": "Token URL",
            "description": f"Full OAuth2 token URL. Default: {_default('auth_url')}",
            "schema": {"type": ["string", "null"], "format": "url"},
        },
        "scope": {
            "label": "Scope",
            "description": "OAuth2 scope(s) to request, comma-separated. Default: none.",
            "schema": {"type": ["string", "null"]},
        },
        "connect_timeout": {
            "label": "Connect timeout (s)",
            "description": (
                f"Seconds to wait for a TCP/TLS connection. Default: {_default('connect_timeout')}."
            ),
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "read_timeout": {
            "label": "Read timeout (s)",
            "description": f"Seconds to wait for a response. Default: {_default('read_timeout')}.",
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "request_deadline": {
            "label": "Request deadline (s)",
            "description": (
                "Seconds one request may take in all, body included (the read timeout bounds each "
                f"read only). Default: {_default('request_deadline')}."
            ),
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
        "verify_ssl": {
            "label": "Verify TLS certificates",
            "description": (f"Turn off only for test servers. Default: {_default('verify_ssl')}."),
            "schema": {**_BOOLEAN_CHOICE},  # a copy each: Airflow owns what it is given
        },
        "allow_insecure_http": {
            "label": "Allow plain http://",
            "description": (
                "Allow an http:// API or token URL on a host that is not a loopback address: the "
                "secret and the tokens would cross the network unencrypted. "
                f"Default: {_default('allow_insecure_http')}."
            ),
            "schema": {**_BOOLEAN_CHOICE},  # a copy each: Airflow owns what it is given
        },
        "page_size": {
            "label": "Page size",
            "description": (
                f"Messages per search page, 1 to {MAX_PAGE_SIZE}. Default: {_default('page_size')}."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PAGE_SIZE},
        },
        "max_concurrency": {
            "label": "Concurrent requests",
            "description": (
                "The most requests in flight at once; the limiter adapts below it to the service's "
                f"rate limit and latency. Default: {_default('max_concurrency')}."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        "max_requests_per_second": {
            "label": "Requests per second",
            "description": (
                "A fixed request rate for this connection in each process (the limit of your contract, "
                "divided by the processes that share it). Default: none, the limiter adapts."
            ),
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
        "max_retries": {
            "label": "Retries",
            "description": (
                f"Retries of a transient failure (429, 5xx, network). Default: {_default('max_retries')}."
            ),
            "schema": {"type": ["integer", "null"], "minimum": 0},
        },
        "max_retry_wait": {
            "label": "Longest single retry wait (s)",
            "description": f"Cap on one wait, including Retry-After. Default: {_default('max_retry_wait')}.",
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "max_retry_time": {
            "label": "Total retry time (s)",
            "description": (
                f"Cap on the time one request spends retrying. Default: {_default('max_retry_time')}."
            ),
            "schema": {"type": ["number", "null"], "minimum": 0},
        },
        "window_hours": {
            "label": "Search window (hours)",
            "description": (
                f"A long range is searched in windows of this length. Default: {_default('window_hours')}."
            ),
            "schema": {"type": ["number", "null"], "minimum": 0.001},
        },
    }


def get_provider_info() -> dict[str, Any]:
    """:return: the provider's metadata: package, integrations, modules and the connection form."""
    return {
        "package-name": "airflow-provider-voicetrack",
        "name": INTEGRATION,
        "description": "Extract and wait for voice messages tracked by Routee's REST API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.routee.net/reference/track-multiple-voice-messages",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_voicetrack.hooks.voicetrack"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_voicetrack.operators.voicetrack"],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_voicetrack.sensors.voicetrack"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_voicetrack.triggers.voicetrack"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "voicetrack",
                "hook-class-name": "airflow_voicetrack.hooks.voicetrack.VoiceTrackHook",
                "hook-name": "Routee Voice Tracking",
                "ui-field-behaviour": {
                    # Port stays visible although the port can live in the API base URL: Airflow
                    # 3.3.2's Test button sends port 0 for an empty or hidden Port field, and the API
                    # then answers 400 (fixed upstream in apache/airflow#73298).
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "login": "Application ID",
                        "password": "Application secret",
                        "host": "API base URL",
                        "port": "Port (for Test)",
                    },
                    "placeholders": {
                        "host": DEFAULT_API_URL,
                        "login": "Routee application id",
                        "password": "Routee application secret",
                        "port": "443",
                    },
                },
                "conn-fields": connection_fields(),
            }
        ],
    }
