"""Parsing, validation and evaluation of search requests: pure functions, no I/O.

Semantics chosen where Routee's docs are silent:

* filters combine with AND; an empty array means no filter;
* matching is case-sensitive; a missing or null field is matched as the empty string;
* ``groups`` matches when *any* of the message's groups matches (``is_not``: when *none* equals the
  term);
* ``status.status`` matches the status current at the time of the request;
* ``sort`` is Spring's ``field[,field...][,asc|desc]`` (repeatable); ties keep the default order,
  creation time then messageId;
* a validation problem is reported in ``properties`` under the parameter's name (``page``, ``size``,
  ``sort``, ``from``, ``to``, ``tagged``, ``body``, ``filters[i].fieldName`` ...);
* a query parameter the endpoint does not have is a validation problem too (``"unknown parameter"``),
  so a client that sends a wrong name fails loudly; a lenient emulator ignores it instead, as a
  typical Spring service does.

The search's parameters are named as in the published reference of Routee's native API (see
:data:`~airflow_voicetrack.constants.SEARCH_PARAMS`); ``date_params`` renames the date range, to play
a service with the other spelling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import msgspec

from airflow_voicetrack.constants import (
    CAMPAIGN_TRACKING_ID_PARAM,
    DATE_END_PARAM,
    DATE_START_PARAM,
    DEFAULT_PAGE_SIZE_API,
    DEFAULT_SEARCH_OPERATOR,
    FILTER_FIELDS,
    MAX_PAGE_SIZE,
    SEARCH_OPERATORS,
    SEARCH_PARAMS,
)

#: Fields ``sort`` accepts.
SORT_FIELDS: tuple[str, ...] = (
    "messageId",
    "conversationTrackingId",
    "status.date",
    "status.status",
    "to",
    "from",
    "country",
    "campaign",
    "price",
    "duration",
)

T = TypeVar("T")

#: Query parameters as a multi-map: name -> every value given.
Params = Mapping[str, Sequence[str]]


class ValidationError(Exception):
    """A 400 Validation Error; ``properties`` maps each bad parameter to a message.

    :param properties: parameter name -> problem.
    """

    def __init__(self, properties: dict[str, str]) -> None:
        super().__init__(properties)
        self.properties = properties


@dataclass(frozen=True)
class Filter:
    """One search filter, validated.

    :param field: one of :data:`~airflow_voicetrack.constants.FILTER_FIELDS`.
    :param operator: one of :data:`~airflow_voicetrack.constants.SEARCH_OPERATORS`.
    :param term: the search term.
    """

    field: str
    operator: str
    term: str


@dataclass
class SearchQuery:
    """A validated search request.

    :param start_ms: inclusive start of the creation-time range (epoch ms), ``None`` = unbounded.
    :param end_ms: exclusive end, ``None`` = unbounded.
    :param page: 0-based page number.
    :param size: page size.
    :param sort: ``(field, descending)`` pairs, most significant first; empty = default order.
    :param campaign_id: only messages of the campaign with this tracking id (``trackingId``).
    :param tagged: ``True`` only messages with a campaign, ``False`` only without, ``None`` all.
    :param filters: AND-combined filters.
    """

    start_ms: int | None = None
    end_ms: int | None = None
    page: int = 0
    size: int = DEFAULT_PAGE_SIZE_API
    sort: list[tuple[str, bool]] = field(default_factory=list)
    campaign_id: str | None = None
    tagged: bool | None = None
    filters: list[Filter] = field(default_factory=list)


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def check_known_params(params: Params, known: Sequence[str], errors: dict[str, str]) -> None:
    """Report each query parameter not in ``known`` as a validation problem under its name.

    :param params: query parameters.
    :param known: the parameters the endpoint has.
    :param errors: collects validation problems.
    """
    for name in params:
        if name not in known:
            takes = ", ".join(known) if known else "no query parameters"
            errors[name] = f"unknown parameter; this endpoint takes: {takes}"


def search_params(date_params: tuple[str, str]) -> tuple[str, ...]:
    """The search's parameters, its date range named ``date_params``.

    :param date_params: the names of the range's start and end.
    """
    names = {DATE_START_PARAM: date_params[0], DATE_END_PARAM: date_params[1]}
    return tuple(names.get(name, name) for name in SEARCH_PARAMS)


def parse_datetime_ms(value: str) -> int:
    """Parse an ISO-8601 date-time to epoch milliseconds; no offset means UTC.

    :param value: e.g. ``2026-11-25T00:00:00Z``, ``2016-08-19T15:00Z``, ``2026-11-25T02:00:00+02:00``.
    :raises ValueError: when it is not an ISO-8601 date-time.
    """
    if "T" not in value:
        raise ValueError(value)
    dt = datetime.fromisoformat(value.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return math.floor(dt.timestamp() * 1000)


def parse_paging(params: Params, errors: dict[str, str], max_size: int = MAX_PAGE_SIZE) -> tuple[int, int]:
    """Read ``page`` (default 0) and ``size`` (default 20, at most ``max_size``).

    :param params: query parameters.
    :param errors: collects validation problems.
    :param max_size: the largest page size accepted.
    """
    page, size = 0, DEFAULT_PAGE_SIZE_API
    raw = _first(params, "page")
    if raw is not None:
        try:
            page = int(raw)
        except ValueError:
            errors["page"] = "must be an integer"
        else:
            if page < 0:
                errors["page"] = "must be greater than or equal to 0"
    raw = _first(params, "size")
    if raw is not None:
        try:
            size = int(raw)
        except ValueError:
            errors["size"] = "must be an integer"
        else:
            if not 1 <= size <= max_size:
                errors["size"] = f"must be between 1 and {max_size}"
    return page, size


def parse_sort(values: Sequence[str], errors: dict[str, str]) -> list[tuple[str, bool]]:
    """Read Spring-style ``sort`` values: ``field[,field...][,asc|desc]``.

    :param values: every ``sort`` value given.
    :param errors: collects validation problems.
    """
    result: list[tuple[str, bool]] = []
    for value in values:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        descending = False
        if parts and parts[-1].lower() in ("asc", "desc"):
            descending = parts.pop().lower() == "desc"
        if not parts:
            errors["sort"] = f"must name a field: one of {', '.join(SORT_FIELDS)}"
            continue
        for name in parts:
            if name not in SORT_FIELDS:
                errors["sort"] = f"unknown sort field {name!r}; one of {', '.join(SORT_FIELDS)}"
            else:
                result.append((name, descending))
    return result


def parse_filters(body: bytes, errors: dict[str, str]) -> list[Filter]:
    """Read the JSON array of filters from a request body (empty body = no filters).

    :param body: raw request body.
    :param errors: collects validation problems.
    """
    if not body.strip():
        return []
    try:
        items = msgspec.json.decode(body)
    except msgspec.DecodeError:
        errors["body"] = "malformed JSON"
        return []
    if not isinstance(items, list):
        errors["body"] = "must be a JSON array of filters"
        return []
    filters = []
    for i, item in enumerate(items):
        where = f"filters[{i}]"
        if not isinstance(item, dict):
            errors[where] = "must be an object with fieldName, searchOperator and searchTerm"
            continue
        name = item.get("fieldName")
        operator = item.get("searchOperator")
        operator = DEFAULT_SEARCH_OPERATOR if operator is None else operator
        term = item.get("searchTerm")
        ok = True
        if name not in FILTER_FIELDS:
            errors[f"{where}.fieldName"] = f"must be one of {', '.join(FILTER_FIELDS)}"
            ok = False
        if operator not in SEARCH_OPERATORS:
            errors[f"{where}.searchOperator"] = f"must be one of {', '.join(SEARCH_OPERATORS)}"
            ok = False
        if term is None:
            errors[f"{where}.searchTerm"] = "must not be null"
            ok = False
        elif isinstance(term, bool) or not isinstance(term, str | int | float):
            errors[f"{where}.searchTerm"] = "must be a string"
            ok = False
        if ok:
            filters.append(Filter(str(name), str(operator), str(term)))
    return filters


def parse_search(
    params: Params,
    body: bytes,
    *,
    max_size: int = MAX_PAGE_SIZE,
    max_range_ms: int | None = None,
    date_params: tuple[str, str] = (DATE_START_PARAM, DATE_END_PARAM),
    known: Sequence[str] | None = None,
) -> SearchQuery:
    """Validate a ``POST /voice/tracking`` request.

    :param params: query parameters.
    :param body: raw JSON body (the filter array).
    :param max_size: the largest page size accepted.
    :param max_range_ms: the longest range accepted when both dates are given (``None``: any).
    :param date_params: the names under which the range's start and end are read.
    :param known: every parameter accepted; any other is a validation problem. ``None``: unknown
        parameters are ignored.
    :raises ValidationError: listing every problem found.
    """
    errors: dict[str, str] = {}
    if known is not None:
        check_known_params(params, known, errors)
    query = SearchQuery()
    start_name, end_name = date_params
    for name in date_params:
        raw = _first(params, name)
        if raw is None or raw == "":
            continue
        try:
            ms = parse_datetime_ms(raw)
        except ValueError:
            errors[name] = "must be an ISO-8601 date-time, e.g. 2026-11-25T00:00:00Z"
            continue
        if name == start_name:
            query.start_ms = ms
        else:
            query.end_ms = ms
    if query.start_ms is not None and query.end_ms is not None:
        if query.end_ms <= query.start_ms:
            errors[end_name] = f"must be after {start_name}"
        elif max_range_ms is not None and query.end_ms - query.start_ms > max_range_ms:
            errors[end_name] = f"the range must not be longer than {max_range_ms / 86_400_000:g} days"
    query.page, query.size = parse_paging(params, errors, max_size)
    query.sort = parse_sort(params.get("sort") or (), errors)
    query.campaign_id = _first(params, CAMPAIGN_TRACKING_ID_PARAM) or None
    tagged = _first(params, "tagged")
    if tagged is not None:
        if tagged.lower() not in ("true", "false"):
            errors["tagged"] = "must be true or false"
        else:
            query.tagged = tagged.lower() == "true"
    query.filters = parse_filters(body, errors)
    if errors:
        raise ValidationError(errors)
    return query


def _text(value: Any) -> str:
    return "" if value is None else str(value)


#: How each filter field reads a message: (document, current status) -> value(s).
FIELD_GETTERS: dict[str, Callable[[dict, str], str | list[str]]] = {
    "id": lambda doc, status: doc["messageId"],
    "recipient": lambda doc, status: doc["to"],
    "from": lambda doc, status: doc["from"],
    "collectedTones": lambda doc, status: _text(doc.get("collectedTones")),
    "groups": lambda doc, status: doc.get("groups") or [],
    "country": lambda doc, status: _text(doc.get("country")),
    "status.status": lambda doc, status: status,
    "campaign": lambda doc, status: _text(doc.get("campaign")),
}

_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "is": lambda value, term: value == term,
    "is_not": lambda value, term: value != term,
    "contains": lambda value, term: term in value,
    "starts_with": lambda value, term: value.startswith(term),
    "ends_with": lambda value, term: value.endswith(term),
}


def filter_matches(flt: Filter, doc: dict, status: str) -> bool:
    """Whether one filter matches a message.

    :param flt: the filter.
    :param doc: the message object.
    :param status: the message's current status.
    """
    value = FIELD_GETTERS[flt.field](doc, status)
    test = _OPERATORS[flt.operator]
    if isinstance(value, list):
        if flt.operator == "is_not":
            return flt.term not in value
        return any(test(v, flt.term) for v in value)
    return test(value, flt.term)


def matches_all(filters: Sequence[Filter], doc: dict, status: str, combine: str = "and") -> bool:
    """Whether every filter matches (AND), or with ``combine="or"`` any of them.

    :param filters: the filters.
    :param doc: the message object.
    :param status: the message's current status.
    :param combine: ``and`` (our assumption about the API) or ``or`` (an emulator deviation).
    """
    test = all if combine == "and" else any
    return test(filter_matches(f, doc, status) for f in filters)


def sort_key(name: str) -> Callable[[dict], Any]:
    """Key function ordering message objects by a :data:`SORT_FIELDS` field (null sorts first).

    :param name: the sort field.
    """
    if name == "status.date":
        return lambda doc: doc["status"]["date"]
    if name == "status.status":
        return lambda doc: doc["status"]["status"]
    if name in ("price", "duration"):
        return lambda doc: doc.get(name) or 0
    return lambda doc: _text(doc.get(name))


def sort_items(items: list[tuple[T, dict]], sort: Sequence[tuple[str, bool]]) -> list[tuple[T, dict]]:
    """
    Sort ``(item, message object)`` pairs given in default order by ``sort``, in place.

    Ties keep the given order.

    :param items: pairs in default order.
    :param sort: ``(field, descending)`` pairs, most significant first.
    """
    for name, descending in reversed(sort):
        key = sort_key(name)
        items.sort(key=lambda item: key(item[1]), reverse=descending)
    return items


def page_envelope(total: int, page: int, size: int, count: int) -> dict[str, Any]:
    """The Spring-style page envelope fields except ``content``.

    :param total: matching messages in the whole search.
    :param page: requested page (0-based).
    :param size: requested page size.
    :param count: items on this page.
    """
    total_pages = math.ceil(total / size) if size else 0
    return {
        "totalPages": total_pages,
        "totalElements": total,
        "number": page,
        "size": size,
        "numberOfElements": count,
        "first": page == 0,
        "last": page + 1 >= total_pages,
        "empty": count == 0,
    }
