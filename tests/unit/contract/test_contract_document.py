"""The OpenAPI contract (``airflow_voicetrack/contract``): a valid OpenAPI 3.1 document that covers what
the API's facts say, and the validators the integration tests use reject what breaks it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate
from support.contract import contract, request_problems, response_problems

from airflow_voicetrack.constants import (
    CAMPAIGN_PATH,
    CONVERSATION_PATH,
    FILTER_FIELDS,
    LISTING_PARAMS,
    MAX_PAGE_SIZE,
    MESSAGE_PATH,
    SEARCH_OPERATORS,
    SEARCH_PARAMS,
    SEARCH_PATH,
)
from airflow_voicetrack.contract import CONTRACT_PATH, load_contract

SOURCES = {"seed", "published-reference", "decision"}
#: The seed page's response table, key by key (``content.`` stripped): the message schema holds all.
SEED_MESSAGE_FIELDS = [
    "messageId", "conversationTrackingId", "to", "from", "groups", "country", "status", "status.date",
    "status.status", "campaign", "applicationName", "originatingService", "direction", "duration",
    "fileURL", "message", "message.gender", "message.language", "message.text", "price",
    "chargeInterval", "collectedTones", "recordings", "recordings.trackingId", "recordings.start",
    "recordings.end", "recordings.from", "recordings.to", "recordings.url", "recordings.voiceTrackingIds",
    "recordings.conversationTrackingId", "recordings.duration", "answeredBy",
]  # fmt: skip
SEED_PAGE_FIELDS = [
    "content",
    "totalPages",
    "last",
    "totalElements",
    "first",
    "numberOfElements",
    "number",
    "size",
]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = contract()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations() -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in contract()["paths"].items()
        for method, op in item.items()
        if method in ("get", "post")
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    document = load_contract()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_it_ships_inside_the_package_and_loads_as_a_fresh_copy() -> None:
    assert (
        CONTRACT_PATH.parent.name == "contract" and CONTRACT_PATH.parent.parent.name == "airflow_voicetrack"
    )
    first = load_contract()
    first["paths"].clear()
    assert load_contract()["paths"]


def test_it_has_exactly_the_operations_the_client_calls() -> None:
    # The client's path templates, with the contract's parameter names.
    assert set(operations()) == {
        "POST /oauth/token",
        f"POST {SEARCH_PATH}",
        "GET " + MESSAGE_PATH.format(message_id="{messageId}"),
        "GET " + CAMPAIGN_PATH.format(campaign_id="{campaignTrackingId}"),
        "GET " + CONVERSATION_PATH.format(conversation_tracking_id="{conversationTrackingId}"),
    }
    assert contract()["paths"]["/oauth/token"]["servers"][0]["url"] == "https://auth.routee.net"
    assert contract()["servers"][0]["url"] == "https://connect.routee.net"


def test_every_parameter_and_operation_names_its_source() -> None:
    for label, op in operations().items():
        assert op.get("x-source") in SOURCES, label
        if op["x-source"] == "decision":
            assert op.get("x-decision"), label
        for parameter in map(resolve, op.get("parameters", [])):
            where = f"{label} {parameter['name']}"
            assert parameter.get("x-source") in SOURCES, where
            if parameter["x-source"] == "decision":
                assert "routee-voice-api.md" in parameter.get("x-decision", ""), where


def test_the_search_has_the_published_parameter_names() -> None:
    parameters = [resolve(p) for p in operations()["POST /voice/tracking"]["parameters"]]
    assert [(p["name"], p["in"], p["x-source"]) for p in parameters] == [
        (name, "query", "published-reference")
        for name in ("from", "to", "page", "size", "sort", "trackingId", "tagged")
    ]
    by_name = {p["name"]: p["schema"] for p in parameters}
    assert by_name["size"]["maximum"] == MAX_PAGE_SIZE and by_name["page"]["minimum"] == 0
    assert by_name["from"]["format"] == by_name["to"]["format"] == "date-time"
    assert by_name["tagged"]["type"] == "boolean"


def query_parameters(label: str) -> list[str]:
    return [p["name"] for p in map(resolve, operations()[label].get("parameters", [])) if p["in"] == "query"]


def test_the_client_and_the_emulator_use_the_contracts_parameter_names() -> None:
    # constants.py is where the client builds its requests and the emulator reads them.
    assert query_parameters("POST /voice/tracking") == list(SEARCH_PARAMS)
    assert query_parameters("GET /voice/tracking/campaign/{campaignTrackingId}") == list(LISTING_PARAMS)
    # The conversation listing is paged like the campaign's; no sort is documented for it.
    assert set(query_parameters("GET /voice/tracking/conversation/{conversationTrackingId}")) < set(
        LISTING_PARAMS
    )


def test_the_filter_body_has_the_seed_enums() -> None:
    body = operations()["POST /voice/tracking"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    item = resolve(body["items"])
    assert item["required"] == ["fieldName", "searchTerm"]
    assert item["properties"]["fieldName"]["enum"] == list(FILTER_FIELDS)
    assert item["properties"]["searchOperator"]["enum"] == list(SEARCH_OPERATORS)
    assert item["properties"]["searchOperator"]["default"] == "is"


def properties_of(schema: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    for name, sub in resolve(schema).get("properties", {}).items():
        names.add(prefix + name)
        sub = resolve(sub)
        if "items" in sub:
            sub = resolve(sub["items"])
        names |= properties_of(sub, f"{prefix}{name}.")
    return names


def test_the_message_has_every_field_of_the_seed_and_allows_unknown_ones() -> None:
    schemas = contract()["components"]["schemas"]
    message = schemas["VoiceMessage"]
    assert set(SEED_MESSAGE_FIELDS) <= properties_of(message)
    assert set(SEED_PAGE_FIELDS) == set(schemas["MessagePage"]["properties"])
    assert message["required"] == ["messageId"]
    for schema in (message, schemas["MessagePage"], schemas["Recording"], schemas["Error"], schemas["Token"]):
        assert schema.get("additionalProperties", True) is not False
    # every optional field tolerates null
    for name, sub in message["properties"].items():
        if name != "messageId":
            assert "null" in sub["type"], name


def test_every_api_operation_has_the_documented_and_the_transient_statuses() -> None:
    documented = {"200", "400", "401", "403", "404", "409", "500"}
    transient = {"429", "502", "503", "504"}
    for label, op in operations().items():
        statuses = set(op["responses"])
        if label == "POST /oauth/token":
            assert {"200", "400", "401"} | transient <= statuses
        else:
            assert statuses == documented | transient, label
        assert "default" not in statuses  # a catch-all would let any status pass
    error = contract()["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "developerMessage"] and "properties" in error["properties"]


# -- the validators of tests/support/contract.py reject what breaks the contract ---------------------


def entry(
    method: str = "POST",
    path: str = "/voice/tracking",
    query: str = "from=2026-11-02T00%3A00%3A00Z&to=2026-11-03T00%3A00%3A00Z&page=0&size=50",
    body: Any = (),
    status: int = 200,
    response: Any = None,
    auth: str | None = "Bearer",
) -> dict[str, Any]:
    if response is None:
        response = {
            "content": [{"messageId": "m1", "campaign": None, "future": {"any": 1}}],
            "totalPages": 1, "totalElements": 1, "number": 0, "size": 50, "numberOfElements": 1,
            "first": True, "last": True,
        }  # fmt: skip
    return {
        "method": method,
        "path": path,
        "query_string": query,
        "headers": {"content-type": "application/json"} if body is not None else {},
        "auth_scheme": auth,
        "body": json.dumps(list(body)) if body is not None else "",
        "status": status,
        "response_headers": {"content-type": "application/json"},
        "response_body": json.dumps(response),
        "response_body_truncated": False,
    }


PAGE = json.loads(entry()["response_body"])


def test_a_valid_search_exchange_passes() -> None:
    good = entry(body=[{"fieldName": "country", "searchTerm": "GR"}])
    assert request_problems(good) == [] and response_problems(good) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"query": "dateStart=2026-11-02T00%3A00%3A00Z&dateEnd=2026-11-03T00%3A00%3A00Z"},
            "dateEnd', 'dateStart",
        ),
        ({"query": "campaignId=abc"}, "campaignId"),
        ({"query": "size=2001"}, "size"),
        ({"query": "from=yesterday"}, "from"),
        ({"body": [{"fieldName": "nope", "searchTerm": "x"}]}, "nope"),
        ({"body": [{"fieldName": "country"}]}, "searchTerm"),
        ({"auth": None}, "ecurity"),
        ({"path": "/voice/tracking/a/b", "method": "GET", "body": None}, "not an operation"),
    ],
)
def test_a_request_breaking_the_contract_is_reported(changes: dict[str, Any], expected: str) -> None:
    problems = request_problems(entry(**changes))
    assert problems and expected in "\n".join(problems)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"response": {"content": []}}, "totalPages"),
        ({"response": {**json.loads(entry()["response_body"]), "first": "yes"}}, "first"),
        (
            {"response": {**json.loads(entry()["response_body"]), "content": [{"campaign": "no id"}]}},
            "messageId",
        ),
        ({"status": 418}, "418"),
        ({"status": 400, "response": {"message": "no code"}}, "code"),
    ],
)
def test_a_response_breaking_the_contract_is_reported(changes: dict[str, Any], expected: str) -> None:
    problems = response_problems(entry(**changes))
    assert problems and expected in "\n".join(problems)
