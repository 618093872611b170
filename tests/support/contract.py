"""Holding logged exchanges of the emulator (``EmulatorProcess(request_log=N).requests()``) to the
OpenAPI contract (``airflow_voicetrack/contract``) with openapi-core."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from airflow_voicetrack.contract import load_contract

#: A path template's parameter, e.g. ``{messageId}``.
_PARAM = re.compile(r"\\\{[^/}]+\\\}")


@functools.cache
def contract() -> dict[str, Any]:
    return load_contract()


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(contract())


def _resolve(item: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref")
    if ref is None:
        return item
    node: Any = contract()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """:return: the contract's path template and operation serving ``method path``, or ``None``."""
    for template, item in contract()["paths"].items():
        pattern = "^" + _PARAM.sub("[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def query_names(method: str, path: str) -> set[str]:
    """:return: the query parameters the contract declares for ``method path``."""
    found = operation_of(method, path)
    assert found, f"{method} {path} is not an operation of the contract"
    return {p["name"] for p in map(_resolve, found[1].get("parameters", [])) if p["in"] == "query"}


def server_of(path: str) -> str:
    """:return: the contract's server URL for ``path`` (the token endpoint has its own host)."""
    found = operation_of("post", path) or operation_of("get", path)
    item = contract()["paths"][found[0]] if found else {}
    return (item.get("servers") or contract()["servers"])[0]["url"]


@dataclass
class LoggedRequest:
    """A logged request in openapi-core's request protocol, sent to the contract's own server."""

    entry: dict[str, Any]
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        headers = Headers(list(self.entry["headers"].items()))
        if self.entry["auth_scheme"]:
            # The log keeps the scheme only: the contract's security scheme needs the header.
            headers["Authorization"] = f"{self.entry['auth_scheme']} redacted"
        query = parse_qsl(self.entry["query_string"], keep_blank_values=True)
        self.parameters = RequestParameters(query=ImmutableMultiDict(query), header=headers, cookie={})

    @property
    def host_url(self) -> str:
        return server_of(self.entry["path"])

    @property
    def path(self) -> str:
        return self.entry["path"]

    @property
    def method(self) -> str:
        return self.entry["method"].lower()

    @property
    def body(self) -> bytes | None:
        body = self.entry["body"]
        return body.encode() if body else None

    @property
    def content_type(self) -> str:
        return self.entry["headers"].get("content-type", "").lower()


@dataclass
class LoggedResponse:
    """A logged response in openapi-core's response protocol."""

    entry: dict[str, Any]

    @property
    def status_code(self) -> int:
        return self.entry["status"]

    @property
    def headers(self) -> Headers:
        return Headers(list(self.entry["response_headers"].items()))

    @property
    def content_type(self) -> str:
        return self.entry["response_headers"].get("content-type", "").lower()

    @property
    def data(self) -> bytes:
        return (self.entry["response_body"] or "").encode()


def _describe(exc: Exception) -> str:
    causes = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        causes.append(str(cause)[:500])
        for inner in getattr(cause, "schema_errors", ()) or ():
            causes.append(f"  {list(inner.absolute_path)}: {inner.message[:300]}")
        cause = cause.__cause__
    return " <- ".join(causes)


def request_problems(entry: dict[str, Any]) -> list[str]:
    """
    :return: why a logged request breaks the contract (empty when it does not): openapi-core's
        request validation, and a query parameter the operation does not declare (OpenAPI itself
        lets those pass, and a wrong parameter name is exactly what the contract must catch).
    """
    label = f"{entry['method']} {entry['path']}?{entry['query_string']}"
    if operation_of(entry["method"], entry["path"]) is None:
        return [f"{label}: not an operation of the contract"]
    problems = []
    declared = query_names(entry["method"], entry["path"])
    sent = {name for name, _ in parse_qsl(entry["query_string"], keep_blank_values=True)}
    if sent - declared:
        problems.append(f"{label}: query parameters {sorted(sent - declared)} are not in the contract")
    try:
        openapi().validate_request(LoggedRequest(entry))
    except Exception as exc:  # openapi-core raises one of several error classes; all mean "invalid"
        problems.append(f"{label}: {_describe(exc)}")
    return problems


def response_problems(entry: dict[str, Any]) -> list[str]:
    """:return: why a logged response breaks the contract (empty when it does not)."""
    label = f"{entry['method']} {entry['path']} -> {entry['status']}"
    if entry["status"] is None:
        return [f"{label}: no response (connection dropped)"]
    if entry["response_body_truncated"]:
        return [f"{label}: body over the log's limit, not checked"]
    try:
        openapi().validate_response(LoggedRequest(entry), LoggedResponse(entry))
    except Exception as exc:
        return [f"{label}: {_describe(exc)}"]
    return []
