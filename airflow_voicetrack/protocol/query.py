"""Search arguments (filters, dates, windows) and the requests built from them."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pendulum

from airflow_voicetrack.constants import (
    ALL_STATUSES,
    CAMPAIGN_PATH,
    CAMPAIGN_TRACKING_ID_PARAM,
    CONVERSATION_PATH,
    DATE_END_PARAM,
    DATE_START_PARAM,
    DEFAULT_SEARCH_OPERATOR,
    FILTER_FIELDS,
    MAX_PAGE_SIZE,
    MESSAGE_PATH,
    SEARCH_OPERATORS,
    SEARCH_PATH,
)
from airflow_voicetrack.protocol.http import Request


@dataclass(frozen=True)
class SearchFilter:
    """
    One search filter, the typed twin of the API's ``{"fieldName", "searchOperator", "searchTerm"}``.

    :param field_name: one of :data:`~airflow_voicetrack.constants.FILTER_FIELDS`.
    :param term: the value to compare with.
    :param operator: one of :data:`~airflow_voicetrack.constants.SEARCH_OPERATORS`.
    """

    field_name: str
    term: str
    operator: str = DEFAULT_SEARCH_OPERATOR

    def to_api(self) -> dict[str, Any]:
        """:return: the filter in the API's form."""
        return {"fieldName": self.field_name, "searchOperator": self.operator, "searchTerm": self.term}


_FILTER_KEYS = ("fieldName", "searchOperator", "searchTerm")


def normalize_filters(filters: Iterable[Mapping[str, Any] | SearchFilter] | None) -> list[dict[str, str]]:
    """
    Validate search filters and return them in the API's form, ``searchOperator`` filled in.

    :param filters: dicts in the API's form or :class:`SearchFilter` objects; ``None`` for none.
    :raises ValueError: naming the filter (index and value) and listing what is accepted.
    """
    if filters is None:
        return []
    if isinstance(filters, (str, bytes, Mapping, SearchFilter)) or not isinstance(filters, Iterable):
        raise ValueError(f"filters must be a list of filters, got {filters!r}")
    result = []
    for index, item in enumerate(filters):
        where = f"filters[{index}] = {item!r}"
        spec = item.to_api() if isinstance(item, SearchFilter) else item
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"{where}: expected a dict {{'fieldName', 'searchOperator', 'searchTerm'}} or a SearchFilter"
            )
        unknown = sorted(set(spec) - set(_FILTER_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; accepted keys: {list(_FILTER_KEYS)}")
        field_name = spec.get("fieldName")
        if field_name not in FILTER_FIELDS:
            raise ValueError(f"{where}: unknown fieldName {field_name!r}; accepted: {list(FILTER_FIELDS)}")
        operator = spec.get("searchOperator")
        operator = DEFAULT_SEARCH_OPERATOR if operator is None else operator
        if operator not in SEARCH_OPERATORS:
            raise ValueError(
                f"{where}: unknown searchOperator {operator!r}; accepted: {list(SEARCH_OPERATORS)}"
            )
        term = spec.get("searchTerm")
        if not isinstance(term, str):
            raise ValueError(f"{where}: searchTerm must be a non-empty string, got {term!r}")
        if not term.strip():
            raise ValueError(f"{where}: searchTerm must not be empty")
        if field_name == "status.status" and operator in ("is", "is_not") and term not in ALL_STATUSES:
            raise ValueError(f"{where}: unknown status {term!r}; accepted: {sorted(ALL_STATUSES)}")
        result.append({"fieldName": field_name, "searchOperator": operator, "searchTerm": term})
    return result


def parse_datetime(value: datetime | str, name: str) -> pendulum.DateTime:
    """
    Read a point in time given as an aware ``datetime``, a pendulum object or an ISO-8601 string.

    :param value: the value; it must carry a time zone (``Z`` or an offset).
    :param name: the parameter's name, for the error message.
    :return: the value in UTC.
    :raises ValueError: for naive values, dates without a time and unparsable strings.
    """
    parsed: object = value
    if isinstance(value, str):
        try:
            parsed = pendulum.parse(value, exact=True, tz=None)
        except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
            raise ValueError(f"{name} = {value!r} is not an ISO-8601 date-time: {exc}") from None
    if not isinstance(parsed, datetime):
        raise ValueError(
            f"{name} must be an aware datetime, a pendulum DateTime or an ISO-8601 date-time string, "
            f"got {value!r}"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{name} = {value!r} has no time zone; give an aware value, e.g. "
            f"'2026-11-01T00:00:00Z' or pendulum.datetime(2026, 11, 1, tz='UTC')"
        )
    return pendulum.instance(parsed).in_tz("UTC")


def format_datetime(value: datetime) -> str:
    """:return: ``value`` as the API expects it: UTC, to the second, e.g. ``2026-11-01T00:00:00Z``."""
    return pendulum.instance(value).in_tz("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_range(
    date_start: datetime | str | None, date_end: datetime | str | None
) -> tuple[pendulum.DateTime | None, pendulum.DateTime | None]:
    """
    Read a half-open range ``[date_start, date_end)``; each bound may be ``None`` (unbounded).

    Bounds are truncated to the second because that is what the API receives.

    :raises ValueError: for invalid bounds or ``date_end <= date_start``.
    """
    start = None if date_start is None else parse_datetime(date_start, "date_start").set(microsecond=0)
    end = None if date_end is None else parse_datetime(date_end, "date_end").set(microsecond=0)
    if start is not None and end is not None and end <= start:
        raise ValueError(
            f"date_end ({format_datetime(end)}) must be after date_start ({format_datetime(start)}); "
            "the range is half-open [date_start, date_end)"
        )
    return start, end


def split_windows(
    start: pendulum.DateTime, end: pendulum.DateTime, window: timedelta
) -> list[tuple[pendulum.DateTime, pendulum.DateTime]]:
    """
    Split ``[start, end)`` into consecutive half-open windows of length ``window`` (the last shorter).

    :param window: window length, at least one second; its fraction of a second is dropped.
    """
    step = timedelta(seconds=max(1, int(window.total_seconds())))
    windows = []
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        windows.append((cursor, upper))
        cursor = upper
    return windows


def build_search_request(
    base_url: str,
    *,
    date_start: datetime | None,
    date_end: datetime | None,
    filters: list[dict[str, str]],
    page: int,
    size: int,
    campaign_tracking_id: str | None = None,
    sort: str | None = None,
    tagged: bool | None = None,
) -> Request:
    """
    Build the ``POST /voice/tracking`` request for one page; ``tagged`` is sent only when set.

    The query parameters are named as in the published reference of Routee's native API, built from
    the official page ``docs.routee.net/reference/calltracking`` (the seed page lost the names):
    ``from``, ``to``, ``page``, ``size``, ``sort``, ``trackingId``, ``tagged``. ``dateStart`` and
    ``dateEnd`` are the SMS search's names, not the voice search's; see routee-voice-api.md, section 2.
    """
    params = {"page": str(page), "size": str(size)}
    if date_start is not None:
        params[DATE_START_PARAM] = format_datetime(date_start)
    if date_end is not None:
        params[DATE_END_PARAM] = format_datetime(date_end)
    if campaign_tracking_id is not None:
        params[CAMPAIGN_TRACKING_ID_PARAM] = campaign_tracking_id
    if sort is not None:
        params["sort"] = sort
    if tagged is not None:
        params["tagged"] = "true" if tagged else "false"
    return Request("POST", base_url + SEARCH_PATH, params=params, json=filters)


def build_message_request(base_url: str, message_id: str) -> Request:
    """:return: the ``GET /voice/tracking/{messageId}`` request."""
    return Request("GET", base_url + MESSAGE_PATH.format(message_id=_path_id(message_id, "message_id")))


def build_conversation_request(
    base_url: str, conversation_tracking_id: str, *, page: int, size: int
) -> Request:
    """:return: the request for one page of a conversation's dial parts."""
    path = CONVERSATION_PATH.format(
        conversation_tracking_id=_path_id(conversation_tracking_id, "conversation_tracking_id")
    )
    return Request("GET", base_url + path, params={"page": str(page), "size": str(size)})


def build_campaign_request(
    base_url: str, campaign_tracking_id: str, *, page: int, size: int, sort: str | None = None
) -> Request:
    """:return: the request for one page of the messages of the campaign with this tracking id."""
    params = {"page": str(page), "size": str(size)}
    if sort is not None:
        params["sort"] = sort
    path = CAMPAIGN_PATH.format(campaign_id=_path_id(campaign_tracking_id, "campaign_tracking_id"))
    return Request("GET", base_url + path, params=params)


def validate_sort(sort: str | None) -> str | None:
    """
    Validate a ``sort`` argument.

    :param sort: Spring syntax ``field[,field...][,asc|desc]``, or ``None``.
    :raises ValueError: for anything else.
    """
    if sort is None:
        return None
    fields = sort.split(",") if isinstance(sort, str) else [""]
    if fields[-1] in ("asc", "desc") and len(fields) > 1:
        fields = fields[:-1]
    if not all(name.strip() and name.strip() not in ("asc", "desc") for name in fields):
        raise ValueError(f"sort must look like 'field', 'field,asc' or 'field1,field2,desc', got {sort!r}")
    return sort


def _path_id(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def validate_page_size(page_size: int) -> int:
    """
    Validate a ``page_size`` argument.

    :param page_size: messages per page.
    :return: ``page_size`` when it is an int between 1 and :data:`MAX_PAGE_SIZE`.
    :raises ValueError: otherwise.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    return page_size


def validate_campaign_tracking_id(campaign_tracking_id: str | None) -> str | None:
    """
    Validate a ``campaign_tracking_id`` argument.

    :return: ``campaign_tracking_id`` without surrounding blanks, or ``None``.
    :raises ValueError: unless it is ``None`` or a non-empty string.
    """
    if campaign_tracking_id is None:
        return None
    if not isinstance(campaign_tracking_id, str) or not campaign_tracking_id.strip():
        raise ValueError(
            f"campaign_tracking_id must be a non-empty string or None, got {campaign_tracking_id!r}; it is "
            "the campaign's tracking id (returned when the campaign is created, shown in Routee's "
            "console), not the campaign name that messages carry in 'campaign'"
        )
    return campaign_tracking_id.strip()


def resolve_campaign_tracking_id(
    campaign_tracking_id: str | None, campaign_id: str | None, *, stacklevel: int = 3
) -> str | None:
    """
    Accept the argument's earlier name, ``campaign_id``, with a :class:`DeprecationWarning`.

    :param stacklevel: the caller's frame that passed ``campaign_id``, for the warning.
    :return: the campaign tracking id given under either name.
    :raises ValueError: when both names are given.
    """
    if campaign_id is None:
        return campaign_tracking_id
    if campaign_tracking_id is not None:
        raise ValueError(
            "give campaign_tracking_id only: campaign_id is its deprecated name, and both were given"
        )
    warnings.warn(
        "campaign_id is deprecated and will be removed in the next minor version; pass "
        "campaign_tracking_id (the campaign's tracking id, the API's trackingId) instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return campaign_id


def validate_limit(limit: int | None) -> int | None:
    """
    Validate a ``limit`` argument.

    :param limit: the most messages a search yields, or ``None`` for all.
    :return: ``limit`` when it is ``None`` or an int >= 0.
    :raises ValueError: otherwise.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None (no limit) or an integer >= 0, got {limit!r}")
    return limit


@dataclass(frozen=True)
class SearchQuery:
    """
    A validated search: everything sent with each of its page requests.

    The default order is the server's own (no ``sort`` sent): no sortable field is documented, and
    completeness does not depend on the order (see :class:`WindowTally`). ``sort`` is passed through.
    """

    date_start: pendulum.DateTime | None
    date_end: pendulum.DateTime | None
    filters: list[dict[str, str]]
    page_size: int
    campaign_tracking_id: str | None = None
    sort: str | None = None
    tagged: bool | None = None

    @classmethod
    def build(
        cls,
        date_start: datetime | str | None,
        date_end: datetime | str | None,
        *,
        filters: Iterable[Mapping[str, Any] | SearchFilter] | None = None,
        campaign_tracking_id: str | None = None,
        sort: str | None = None,
        tagged: bool | None = None,
        page_size: int = MAX_PAGE_SIZE,
        require_range: bool = True,
    ) -> SearchQuery:
        """
        Validate a search's arguments, before any request.

        :param require_range: whether both ``date_start`` and ``date_end`` are required.
        :raises ValueError: naming the argument at fault.
        """
        start, end = parse_range(date_start, date_end)
        if require_range and (start is None or end is None):
            raise ValueError("date_start and date_end are both required for a search")
        campaign_tracking_id = validate_campaign_tracking_id(campaign_tracking_id)
        if tagged is not None and not isinstance(tagged, bool):
            raise ValueError(f"tagged must be True, False or None (not sent), got {tagged!r}")
        return cls(
            date_start=start,
            date_end=end,
            filters=normalize_filters(filters),
            page_size=validate_page_size(page_size),
            campaign_tracking_id=campaign_tracking_id,
            sort=validate_sort(sort),
            tagged=tagged,
        )

    def windows(
        self, window: timedelta | None
    ) -> list[tuple[pendulum.DateTime | None, pendulum.DateTime | None]]:
        """:return: the range split into windows of length ``window``, or whole when it is ``None``."""
        if window is None or self.date_start is None or self.date_end is None:
            return [(self.date_start, self.date_end)]
        return [(start, end) for start, end in split_windows(self.date_start, self.date_end, window)]

    def page_request(
        self,
        base_url: str,
        window: tuple[pendulum.DateTime | None, pendulum.DateTime | None],
        page: int,
        size: int,
    ) -> Request:
        """:return: the request for page ``page`` (of ``size`` messages) of ``window``."""
        return build_search_request(
            base_url,
            date_start=window[0],
            date_end=window[1],
            filters=self.filters,
            page=page,
            size=size,
            campaign_tracking_id=self.campaign_tracking_id,
            sort=self.sort,
            tagged=self.tagged,
        )
