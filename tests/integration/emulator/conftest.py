"""Fixtures for the emulator's own tests: a small emulator process and a raw HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_voicetrack.emulator.process import EmulatorProcess

#: Small data set: 2,000 messages over one day, so a day's search has several 500-item pages.
START, END = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"


class Api:
    """A raw client of the emulator, as a test would drive the real service."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.emu = emu
        self.http = httpx.Client(base_url=emu.url, timeout=30)
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post(
            "/oauth/token",
            auth=(self.emu.client_id, self.emu.client_secret),
            data={"grant_type": "client_credentials"},
        )
        response.raise_for_status()
        return response.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def search(self, filters: Any = None, **params: Any) -> httpx.Response:
        return self.http.post("/voice/tracking", params=params, json=filters or [], headers=self.headers)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.headers)

    def all_pages(self, filters: Any = None, **params: Any) -> list[dict]:
        """Every message of a search, paging until ``last``."""
        items: list[dict] = []
        page = 0
        while True:
            body = self.search(filters, page=page, **params).json()
            items.extend(body["content"])
            if body["last"]:
                return items
            page += 1


@pytest.fixture(scope="session")
def emu_small() -> Iterator[EmulatorProcess]:
    """A 2,000-message emulator shared by the emulator's integration tests."""
    with EmulatorProcess(messages=2000, seed=7, start=START, end=END) as emu:
        yield emu


@pytest.fixture
def emu(emu_small: EmulatorProcess) -> EmulatorProcess:
    """The shared emulator with faults off, stats zeroed and arrivals dropped."""
    emu_small.reset()
    return emu_small


@pytest.fixture
def api(emu: EmulatorProcess) -> Iterator[Api]:
    client = Api(emu)
    yield client
    client.http.close()
