"""Airflow's own CLI discovers the provider: a broken provider info breaks every provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import pytest

COMMANDS = ("list", "hooks", "triggers", "widgets", "behaviours")


@pytest.fixture(scope="module")
def cli_output() -> dict[str, list[dict]]:
    def run(command: str) -> list[dict]:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "providers", command, "--output", "json"],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=180,
            check=True,
        )
        return json.loads(result.stdout)

    with ThreadPoolExecutor(len(COMMANDS)) as pool:
        return dict(zip(COMMANDS, pool.map(run, COMMANDS), strict=True))


def test_providers_list_shows_the_package(cli_output: dict[str, list[dict]]) -> None:
    packages = {row["package_name"]: row for row in cli_output["list"]}
    assert packages["airflow-provider-voicetrack"]["version"] == version("airflow-provider-voicetrack")


def test_providers_hooks_imports_the_hook(cli_output: dict[str, list[dict]]) -> None:
    hooks = {row["connection_type"]: row for row in cli_output["hooks"]}
    assert hooks["voicetrack"]["class"] == "airflow_voicetrack.hooks.voicetrack.VoiceTrackHook"
    assert hooks["voicetrack"]["conn_id_attribute_name"] == "voicetrack_conn_id"
    assert hooks["voicetrack"]["package_name"] == "airflow-provider-voicetrack"


def test_providers_triggers_lists_the_trigger_module(cli_output: dict[str, list[dict]]) -> None:
    triggers = [row for row in cli_output["triggers"] if row["package_name"] == "airflow-provider-voicetrack"]
    assert [row["class"] for row in triggers] == ["airflow_voicetrack.triggers.voicetrack"]


def test_providers_widgets_shows_the_connection_extras(cli_output: dict[str, list[dict]]) -> None:
    names = {
        row["connection_parameter_name"]
        for row in cli_output["widgets"]
        if row["package_name"] == "airflow-provider-voicetrack"
    }
    assert "extra__voicetrack__auth_url" in names
    assert "extra__voicetrack__page_size" in names


def test_providers_behaviours_relabels_the_form(cli_output: dict[str, list[dict]]) -> None:
    assert {"field_behaviours": "voicetrack"} in cli_output["behaviours"]
