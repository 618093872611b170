"""The hooks read their connection (from an env var, no sockets) and validate it with their arguments."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook, VoiceTrackHook

CONN = {
    "conn_type": "voicetrack",
    "login": "app",
    "password": "secret",
    "host": "http://127.0.0.1:9",
    "extra": {"auth_url": "http://127.0.0.1:9/oauth/token", "page_size": 500, "window_hours": 6},
}


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(CONN))


def test_hook_registers_the_connection_type():
    assert (VoiceTrackHook.conn_type, VoiceTrackHook.default_conn_name) == (
        "voicetrack",
        "voicetrack_default",
    )
    assert VoiceTrackHook.conn_name_attr == "voicetrack_conn_id"


def test_hook_reads_extras_and_arguments_win():
    settings = VoiceTrackHook(max_concurrency=2, window=timedelta(hours=1)).settings
    assert (settings.page_size, settings.max_concurrency, settings.window) == (500, 2, timedelta(hours=1))
    assert settings.base_url == "http://127.0.0.1:9"


def test_async_hook_reads_the_same_settings():
    async def read():
        return await VoiceTrackAsyncHook(page_size=10).get_settings()

    settings = asyncio.run(read())
    assert (settings.page_size, settings.window) == (10, timedelta(hours=6))


def test_invalid_argument_names_the_parameter():
    with pytest.raises(ValueError, match="max_retries must be an integer >= 0, got -1"):
        _ = VoiceTrackHook(max_retries=-1).settings
