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
    DEFAULT_TOKEN_URL,
    DEFAULT_WINDOW_HOURS,
    MAX_PAGE_SIZE,
)

INTEGRATION = "Routee Voice Tracking"


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: modules, connection type and its form (defaults from ``constants``)."""
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
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "login": "Application ID",
                        "password": "Application secret",
                        "host": "API base URL",
                    },
                    "placeholders": {
                        "host": DEFAULT_API_URL,
                        "login": "Routee application id",
                        "password": "Routee application secret",
                    },
                },
                "conn-fields": {
                    "token_url": {
                        "label": "Token URL",
                        "description": f"Full OAuth2 token URL. Default: {DEFAULT_TOKEN_URL}",
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
                            f"Seconds to wait for a TCP/TLS connection. Default: {DEFAULT_CONNECT_TIMEOUT:g}."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": (
                            f"Seconds to wait for a response. Default: {DEFAULT_READ_TIMEOUT:g}."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "description": "Turn off only for test servers. Default: true.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "page_size": {
                        "label": "Page size",
                        "description": (
                            f"Messages per search page, 1 to {MAX_PAGE_SIZE}. Default: {MAX_PAGE_SIZE}."
                        ),
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PAGE_SIZE},
                    },
                    "max_concurrency": {
                        "label": "Concurrent requests",
                        "description": (f"Pages fetched at once. Default: {DEFAULT_MAX_CONCURRENCY}."),
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Retries",
                        "description": (
                            "Retries of a transient failure (429, 5xx, network). "
                            f"Default: {DEFAULT_MAX_RETRIES}."
                        ),
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "max_retry_wait": {
                        "label": "Longest single retry wait (s)",
                        "description": (
                            f"Cap on one wait, including Retry-After. Default: {DEFAULT_MAX_RETRY_WAIT:g}."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "max_retry_time": {
                        "label": "Total retry time (s)",
                        "description": (
                            "Cap on the time one request spends retrying. "
                            f"Default: {DEFAULT_MAX_RETRY_TIME:g}."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "window_hours": {
                        "label": "Search window (hours)",
                        "description": (
                            "A long range is searched in windows of this length. "
                            f"Default: {DEFAULT_WINDOW_HOURS:g}."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0.001},
                    },
                },
            }
        ],
    }
