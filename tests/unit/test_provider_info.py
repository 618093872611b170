from __future__ import annotations

import json
from importlib.metadata import distribution, entry_points
from importlib.resources import files

import jsonschema
import pytest

from airflow_voicetrack import __version__
from airflow_voicetrack.get_provider_info import get_provider_info
from airflow_voicetrack.protocol import KNOWN_EXTRAS


@pytest.fixture(scope="module")
def provider_info() -> dict:
    return get_provider_info()


def test_provider_info_validates_against_airflows_schema(provider_info: dict) -> None:
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(provider_info, schema)


def test_connection_form_validates_against_provider_yaml_schema(provider_info: dict) -> None:
    """`conn-fields` and `ui-field-behaviour` are checked by the provider.yaml schema only."""
    schema = json.loads(files("airflow").joinpath("provider.yaml.schema.json").read_text())
    conn_schema = schema["properties"]["connection-types"]["items"]
    for conn in provider_info["connection-types"]:
        jsonschema.validate(conn, conn_schema)


def test_package_name_matches_the_distribution(provider_info: dict) -> None:
    dist = distribution(provider_info["package-name"])
    assert dist.version == __version__ == provider_info["versions"][0]


def test_entry_point_points_at_get_provider_info() -> None:
    (entry_point,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_voicetrack")
    ]
    assert entry_point.load() is get_provider_info


def test_every_declared_module_and_hook_class_imports(provider_info: dict) -> None:
    import importlib

    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in provider_info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in provider_info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"] == "voicetrack"
        assert hook.default_conn_name == "voicetrack_default"


def test_connection_form_labels(provider_info: dict) -> None:
    (conn,) = provider_info["connection-types"]
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"] == {
        "login": "Application ID",
        "password": "Application secret",
        "host": "API base URL",
    }
    assert behaviour["placeholders"]["host"] == "https://connect.routee.net"
    assert "token_url" in conn["conn-fields"]


def test_connection_form_lists_only_extras_the_hook_reads(provider_info: dict) -> None:
    (conn,) = provider_info["connection-types"]
    assert set(conn["conn-fields"]) <= set(KNOWN_EXTRAS)
