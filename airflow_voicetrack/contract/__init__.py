"""
The OpenAPI 3.1 contract of the Routee operations this provider calls.

``voicetrack.openapi.yaml`` (shipped in the wheel) describes the token, the voice search, one
message, a campaign's messages and a conversation: their parameters, each with ``x-source`` (the
seed page, Routee's published reference, or a decision of ours), the filter body, the page envelope,
the message, the error body and the status codes. The test suite holds the client's requests and
the emulator's responses to it.

Standard library and PyYAML (which Airflow ships) only, so importing it needs neither Airflow nor
the emulator's server stack.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

#: The contract document.
CONTRACT_PATH = Path(__file__).with_name("voicetrack.openapi.yaml")


@functools.cache
def _load() -> dict[str, Any]:
    with CONTRACT_PATH.open(encoding="utf-8") as f:
        document = yaml.safe_load(f)
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1"):
        raise ValueError(f"{CONTRACT_PATH} is not an OpenAPI 3.1 document")
    return document


def load_contract() -> dict[str, Any]:
    """
    Return the contract as a dict (a fresh copy: callers may change it).

    :raises ValueError: when the file is not an OpenAPI 3.1 document.
    """
    return copy.deepcopy(_load())


__all__ = ["CONTRACT_PATH", "load_contract"]
