"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_voicetrack import __version__
from airflow_voicetrack.constants import DEFAULT_API_URL
from airflow_voicetrack.extras import EXTRAS, Extra

INTEGRATION = "Routee Voice Tracking"

#: The schema of a true/false extra. A choice rather than a switch: an untouched switch shows "off"
#: (verify_ssl's default is on) and a switch with a default is stored in every connection. Empty =
#: the default.
_BOOLEAN_CHOICE: dict[str, Any] = {"type": ["string", "null"], "enum": ["true", "false"]}


def connection_fields() -> dict[str, Any]:
    """
    The connection form's extra fields: one per extra the hook reads (``extras.EXTRAS``).

    None pre-fills a value: Airflow would store a pre-filled value in every saved connection, which
    would then keep it after a later release changes the default. Empty fields are stored as null
    and the hook applies the default, which each description shows.
    """
    return {
        extra.name: {
            "label": extra.label,
            "description": f"{extra.description} Default: {extra.shown_default()}.",
            "schema": _schema(extra),
        }
        for extra in EXTRAS
        if extra.in_form
    }


def _schema(extra: Extra) -> dict[str, Any]:
    """:return: the JSON schema of the form field: a fresh dict each time (Airflow owns what it is given)."""
    if extra.kind == "boolean":
        return {**_BOOLEAN_CHOICE}
    if extra.kind in ("url", "text"):
        return {"type": ["string", "null"], **({"format": "url"} if extra.kind == "url" else {})}
    schema: dict[str, Any] = {"type": [extra.kind, "null"]}
    if extra.positive:
        schema["exclusiveMinimum"] = 0
    elif extra.minimum is not None:
        schema["minimum"] = extra.minimum
    if extra.maximum is not None:
        schema["maximum"] = extra.maximum
    return schema


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
