from __future__ import annotations

import json
from dataclasses import fields
from importlib.metadata import distribution, entry_points
from importlib.resources import files

import jsonschema
import pytest

from airflow_voicetrack import __version__
from airflow_voicetrack.get_provider_info import get_provider_info
from airflow_voicetrack.protocol import Settings, unknown_extras


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
        "port": "Port (for Test)",
    }
    assert behaviour["placeholders"]["host"] == "https://connect.routee.net"
    assert "auth_url" in conn["conn-fields"]


def settings_with(extra: dict) -> Settings:
    return Settings.from_connection(
        conn_id="form", host=None, port=None, login="app-id", password="app-secret", extra=extra, overrides={}
    )


#: A value of each form field's type that is not its default, and one the hook must refuse.
VALID = {"url": "https://auth.example.com/oauth/token", "string": "read", "number": 7, "integer": 7}
INVALID = {"url": "auth.example.com", "string": 42, "number": "soon", "integer": "many"}


def field_type(field: dict) -> str:
    schema = field["schema"]
    if "enum" in schema:
        return "boolean"
    if schema.get("format") == "url":
        return "url"
    return next(kind for kind in schema["type"] if kind != "null")


def test_the_hook_reads_and_validates_every_extra_the_form_lists(provider_info: dict) -> None:
    (conn,) = provider_info["connection-types"]
    for name, field in conn["conn-fields"].items():
        kind = field_type(field)
        with pytest.raises(ValueError, match=name):
            settings_with({name: "perhaps" if kind == "boolean" else INVALID[kind]})


def test_every_setting_an_extra_sets_is_in_the_form(provider_info: dict) -> None:
    (conn,) = provider_info["connection-types"]
    default = settings_with({})
    changed: set[str] = set()
    for name, field in conn["conn-fields"].items():
        kind = field_type(field)
        for value in ("true", "false") if kind == "boolean" else (VALID[kind],):
            settings = settings_with({name: value})
            changed |= {
                f.name for f in fields(Settings) if getattr(settings, f.name) != getattr(default, f.name)
            }
    # The connection's own fields (host, login, password) set the rest.
    assert changed == {f.name for f in fields(Settings)} - {"base_url", "client_id", "client_secret"}


def test_the_unknown_extra_warning_knows_the_form_and_the_deprecated_name(provider_info: dict) -> None:
    (conn,) = provider_info["connection-types"]
    known = {**dict.fromkeys(conn["conn-fields"], 1), "token_url": "https://auth.example.com/t"}
    assert unknown_extras(known, "c") == []
    assert unknown_extras({"read_timout": 1}, "c") == [
        "connection 'c' has an unknown extra 'read_timout', which is ignored; did you mean 'read_timeout'?"
    ]


def test_connection_form_shows_the_port_for_airflows_test_button(provider_info: dict) -> None:
    # Airflow 3.3.2's Test sends port 0 for an empty or hidden Port field and gets a 400 (#73298):
    # hiding Port was tried (tests/system/test_connection_form_ui.py) and does not avoid it.
    (conn,) = provider_info["connection-types"]
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["hidden-fields"] == ["schema"]
    assert behaviour["relabeling"]["port"] == "Port (for Test)"
    assert behaviour["placeholders"]["port"] == "443"


def test_connection_form_pre_fills_nothing(provider_info: dict) -> None:
    # A pre-filled value would be stored in every saved connection, freezing today's default.
    (conn,) = provider_info["connection-types"]
    for name, field in conn["conn-fields"].items():
        assert "default" not in field["schema"], name
        assert "null" in field["schema"]["type"], name


def test_connection_form_descriptions_show_the_defaults_the_hook_applies(provider_info: dict) -> None:
    from airflow_voicetrack.constants import DEFAULT_TOKEN_URL
    from airflow_voicetrack.protocol import Settings

    (conn,) = provider_info["connection-types"]
    fields = conn["conn-fields"]
    applied = Settings.from_connection(
        conn_id="c", host=None, port=None, login="a", password="b", extra={}, overrides={}
    )
    shown = {
        name: field["description"].rsplit("Default: ", 1)[1].rstrip(".") for name, field in fields.items()
    }
    assert shown["auth_url"] == applied.token_url == DEFAULT_TOKEN_URL
    assert shown["verify_ssl"] == str(applied.verify_ssl).lower()
    # The default (false) as applied: an empty extra refuses plain http:// to another host.
    assert shown["allow_insecure_http"] == "false"
    with pytest.raises(ValueError, match="allow_insecure_http: true"):
        Settings.from_connection(
            conn_id="c",
            host="http://api.example.com",
            port=None,
            login="a",
            password="b",
            extra={},
            overrides={},
        )
    assert float(shown["window_hours"]) * 3600 == applied.window.total_seconds()
    numbers = (
        "connect_timeout",
        "read_timeout",
        "request_deadline",
        "page_size",
        "max_concurrency",
        "max_retries",
    )
    for name in (*numbers, "max_retry_wait", "max_retry_time"):
        assert float(shown[name]) == getattr(applied, name), name
