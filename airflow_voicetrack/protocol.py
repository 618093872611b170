"""
The voice tracking protocol, free of I/O.

Everything the sync hook (``requests``) and the async hook (``httpx``) must agree on lives here, so
the two cannot drift apart: validating settings, filters and dates, splitting a range into windows,
building requests, reading tokens and page envelopes, deciding after each response whether to
succeed, refresh the token, retry (and how long to wait) or fail with a typed error, and accounting
for the messages of a search (de-duplication, totals, progress). The transports only move bytes.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
import pendulum

from airflow_voicetrack.constants import (
    ALL_STATUSES,
    CAMPAIGN_PATH,
    CONVERSATION_PATH,
    DEFAULT_API_URL,
    DEFAULT_SEARCH_OPERATOR,
    DEFAULT_TOKEN_URL,
    FILTER_FIELDS,
    MAX_PAGE_SIZE,
    MESSAGE_PATH,
    SEARCH_OPERATORS,
    SEARCH_PATH,
)
from airflow_voicetrack.exceptions import (
    VoiceTrackAPIError,
    VoiceTrackAuthError,
    VoiceTrackConnectionError,
    VoiceTrackNotFoundError,
    VoiceTrackResponseError,
    VoiceTrackTransientError,
)

T = TypeVar("T")

#: HTTP statuses that are retried with backoff.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Base of the exponential backoff, in seconds: waits grow 0.5, 1, 2, 4 ... (with jitter) up to the cap.
BACKOFF_BASE = 0.5
#: A token is renewed this share of its lifetime before it expires (at most 60 s before).
TOKEN_RENEW_SHARE = 0.1


# --------------------------------------------------------------------------------------------
# Settings


#: Requests one search keeps in flight when neither the connection nor the task says otherwise.
DEFAULT_MAX_CONCURRENCY = 4


@dataclass(frozen=True)
class Settings:
    """
    Everything a hook needs to talk to the API, validated.

    Built from the Airflow connection with :meth:`from_connection`; a hook keyword argument wins
    over the connection extra of the same name, which wins over the default.
    """

    base_url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    verify_ssl: bool = True
    page_size: int = MAX_PAGE_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_retries: int = 8
    max_retry_wait: float = 60.0
    max_retry_time: float = 600.0
    window: timedelta = timedelta(hours=24)
    request_deadline: float = 300.0

    @classmethod
    def from_connection(
        cls,
        *,
        conn_id: str,
        host: str | None,
        port: int | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> Settings:
        """
        Validate a connection and the hook's keyword arguments, before any request.

        :param conn_id: the connection id, for error messages.
        :param host: API base URL with scheme; empty means :data:`DEFAULT_API_URL`.
        :param port: replaces the port of ``host`` when set.
        :param login: the application id.
        :param password: the application secret.
        :param extra: the connection's extras (``token_url``, ``scope``, timeouts, ...).
        :param overrides: hook keyword arguments; ``None`` values are ignored.
        :raises ValueError: naming the field and the fix; also for a plain ``http://`` URL to a host
            that is not a loopback address, unless the extra ``allow_insecure_http`` is true.
        """
        where = f"connection {conn_id!r}"
        if not login:
            raise ValueError(f"{where} has no login: set it to the Routee application id")
        if not password:
            raise ValueError(f"{where} has no password: set it to the Routee application secret")
        values = {**{k: v for k, v in extra.items() if v not in (None, "")}}
        values.update({k: v for k, v in overrides.items() if v is not None})
        window = values.get("window")
        if window is None:
            hours = _number(values, "window_hours", 24.0, positive=True)
            window = timedelta(hours=hours)
        elif not isinstance(window, timedelta) or window < timedelta(seconds=1):
            raise ValueError(f"window must be a timedelta of at least one second, got {window!r}")
        token_url = values.get("token_url") or DEFAULT_TOKEN_URL
        scope = values.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise ValueError(f"extra 'scope' of {where} must be a comma-separated string, got {scope!r}")
        base_url = _api_base_url(host, port, where)
        token_url = _http_url(token_url, f"extra 'token_url' of {where}", DEFAULT_TOKEN_URL)
        if not _boolean(values, "allow_insecure_http", False):
            _refuse_cleartext(base_url, f"host field of {where}", where)
            _refuse_cleartext(token_url, f"extra 'token_url' of {where}", where)
        return cls(
            base_url=base_url,
            token_url=token_url,
            client_id=login,
            client_secret=password,
            scope=scope or None,
            connect_timeout=_number(values, "connect_timeout", 10.0, positive=True),
            read_timeout=_number(values, "read_timeout", 60.0, positive=True),
            verify_ssl=_boolean(values, "verify_ssl", True),
            page_size=_integer(values, "page_size", MAX_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE),
            max_concurrency=_integer(values, "max_concurrency", DEFAULT_MAX_CONCURRENCY, minimum=1),
            max_retries=_integer(values, "max_retries", 8, minimum=0),
            max_retry_wait=_number(values, "max_retry_wait", 60.0, minimum=0),
            max_retry_time=_number(values, "max_retry_time", 600.0, minimum=0),
            window=window,
            request_deadline=_number(values, "request_deadline", 300.0, positive=True),
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry limits these settings describe."""
        return RetryPolicy(self.max_retries, self.max_retry_wait, self.max_retry_time)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or an error text."""
        return (self.client_secret, basic_credentials(self.client_id, self.client_secret))


def validate_page_size(page_size: int) -> int:
    """
    :param page_size: messages per page.
    :return: ``page_size`` when it is an int between 1 and :data:`MAX_PAGE_SIZE`.
    :raises ValueError: otherwise.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    return page_size


def validate_limit(limit: int | None) -> int | None:
    """
    :param limit: the most messages a search yields, or ``None`` for all.
    :return: ``limit`` when it is ``None`` or an int >= 0.
    :raises ValueError: otherwise.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None (no limit) or an integer >= 0, got {limit!r}")
    return limit


def _api_base_url(host: str | None, port: int | None, where: str) -> str:
    url = _http_url(host or DEFAULT_API_URL, f"host field of {where}")
    if port:
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))
    return url.rstrip("/")


def _http_url(value: Any, what: str, example: str = DEFAULT_API_URL) -> str:
    if isinstance(value, str) and value.strip() and "://" not in value and not value.startswith("/"):
        # A bare host name such as "connect.routee.net": say which field to fix, and how.
        fixed = "https://" + value.strip()
        raise ValueError(
            f"{what} must be an http(s) URL with its scheme, got {value!r} (no scheme); set it to {fixed!r}"
        )
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL such as {example!r}, got {value!r}")
    return value


def _is_loopback(host: str) -> bool:
    """:return: whether ``host`` names this machine, decided from the text alone (no name lookup)."""
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always the loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_cleartext(url: str, what: str, where: str) -> None:
    """
    Refuse a plain ``http://`` URL to another machine: the application secret (token request) and
    the access token (API calls) would cross the network readable by anyone on the path.

    :raises ValueError: naming the field and both fixes.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return
    fixed = urlunsplit(parts._replace(scheme="https", netloc=parts.netloc.rpartition("@")[2]))
    raise ValueError(
        f"{what} uses plain http:// to {parts.hostname!r}, which is not a loopback address: the "
        f"application secret and access tokens would cross the network unencrypted; use {fixed!r}, "
        f"or set the extra allow_insecure_http: true on {where} if cleartext is really intended"
    )


def _number(
    values: Mapping[str, Any],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    value = values.get(name, default)
    try:
        number = float(value)
        valid = not isinstance(value, bool) and math.isfinite(number)
    except (TypeError, ValueError):
        valid = False
    if valid and positive:
        valid = number > 0
    if valid and minimum is not None:
        valid = number >= minimum
    if not valid:
        bound = "> 0" if positive else f">= {minimum:g}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return number


def _integer(
    values: Mapping[str, Any], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    value = values.get(name, default)
    try:
        number = int(value)
        valid = not isinstance(value, (bool, float)) and minimum <= number <= (maximum or number)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return number


def _boolean(values: Mapping[str, Any], name: str, default: bool) -> bool:
    value = values.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{name} must be true or false, got {value!r}")


# --------------------------------------------------------------------------------------------
# Filters, dates, windows


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


# --------------------------------------------------------------------------------------------
# Requests and responses


@dataclass(frozen=True)
class Request:
    """One HTTP request, independent of the library that sends it."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: the token endpoint is called with Basic credentials, every other request with the token
    needs_token: bool = True

    @property
    def label(self) -> str:
        """``METHOD path`` for messages: never the query string, never a header."""
        return f"{self.method} {urlsplit(self.url).path}"


@dataclass(frozen=True)
class Response:
    """
    What a transport received.

    :param headers: a case-insensitive mapping (``requests`` and ``httpx`` both give one).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes


def basic_credentials(client_id: str, client_secret: str) -> str:
    """:return: the value of the token request's ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")


def build_token_request(settings: Settings) -> Request:
    """:return: the OAuth2 client-credentials request for an access token."""
    data = {"grant_type": "client_credentials"}
    if settings.scope:
        data["scope"] = settings.scope
    return Request(
        "POST",
        settings.token_url,
        data=data,
        headers={"Authorization": basic_credentials(settings.client_id, settings.client_secret)},
        needs_token=False,
    )


def build_search_request(
    base_url: str,
    *,
    date_start: datetime | None,
    date_end: datetime | None,
    filters: list[dict[str, str]],
    page: int,
    size: int,
    campaign_id: str | None = None,
    sort: str | None = None,
    tagged: bool | None = None,
) -> Request:
    """
    :return: the ``POST /voice/tracking`` request for one page. ``tagged`` is sent only when set.
    """
    params = {"page": str(page), "size": str(size)}
    if date_start is not None:
        params["dateStart"] = format_datetime(date_start)
    if date_end is not None:
        params["dateEnd"] = format_datetime(date_end)
    if campaign_id is not None:
        params["campaignId"] = campaign_id
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
    base_url: str, campaign_id: str, *, page: int, size: int, sort: str | None = None
) -> Request:
    """:return: the request for one page of a campaign's messages."""
    params = {"page": str(page), "size": str(size)}
    if sort is not None:
        params["sort"] = sort
    path = CAMPAIGN_PATH.format(campaign_id=_path_id(campaign_id, "campaign_id"))
    return Request("GET", base_url + path, params=params)


def validate_sort(sort: str | None) -> str | None:
    """
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
    campaign_id: str | None = None
    sort: str | None = None
    tagged: bool | None = None

    @classmethod
    def build(
        cls,
        date_start: datetime | str | None,
        date_end: datetime | str | None,
        *,
        filters: Iterable[Mapping[str, Any] | SearchFilter] | None = None,
        campaign_id: str | None = None,
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
        if campaign_id is not None and (not isinstance(campaign_id, str) or not campaign_id.strip()):
            raise ValueError(f"campaign_id must be a non-empty string or None, got {campaign_id!r}")
        if tagged is not None and not isinstance(tagged, bool):
            raise ValueError(f"tagged must be True, False or None (not sent), got {tagged!r}")
        return cls(
            date_start=start,
            date_end=end,
            filters=normalize_filters(filters),
            page_size=validate_page_size(page_size),
            campaign_id=campaign_id,
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
            campaign_id=self.campaign_id,
            sort=self.sort,
            tagged=self.tagged,
        )


# --------------------------------------------------------------------------------------------
# Bodies


class ResponseFormatError(ValueError):
    """A 2xx body that is not what the API promises; retried like a transient failure."""


@dataclass(frozen=True)
class Token:
    """An access token and when (``time.monotonic()``) to stop using it."""

    value: str = field(repr=False)
    renew_at: float

    def is_fresh(self, now: float) -> bool:
        """:return: whether the token can still be used at monotonic time ``now``."""
        return now < self.renew_at


def parse_token(body: bytes, now: float) -> Token:
    """
    :param body: the token endpoint's JSON answer.
    :param now: monotonic time when the request was sent.
    :raises ResponseFormatError: when the body holds no usable token.
    """
    data = _json_object(body)
    value = data.get("access_token")
    expires_in = data.get("expires_in", 3600)
    if not isinstance(value, str) or not value:
        raise ResponseFormatError("the token response has no access_token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
        raise ResponseFormatError(f"the token response has an invalid expires_in: {expires_in!r}")
    return Token(value, now + expires_in - min(60.0, expires_in * TOKEN_RENEW_SHARE))


@dataclass(frozen=True)
class Page:
    """One page envelope of a search (or of a conversation or campaign listing), validated."""

    content: list[dict[str, Any]]
    number: int
    size: int
    total_elements: int
    total_pages: int


def parse_page(body: bytes, *, page: int, size: int) -> Page:
    """
    Read a page envelope and check that it agrees with itself and with the request.

    :param page: the requested page number.
    :param size: the requested page size.
    :raises ResponseFormatError: when the body is malformed or the envelope contradicts itself.
    """
    data = _json_object(body)
    content = data.get("content")
    if not isinstance(content, list) or not all(_is_message(item) for item in content):
        raise ResponseFormatError("the page has no list of messages with a string messageId in 'content'")
    fields = {}
    for key in ("number", "size", "numberOfElements", "totalElements", "totalPages"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ResponseFormatError(f"the page envelope has an invalid {key!r}: {value!r}")
        fields[key] = value
    total, pages = fields["totalElements"], fields["totalPages"]
    problems = []
    if fields["numberOfElements"] != len(content):
        problems.append(f"numberOfElements {fields['numberOfElements']} but {len(content)} items")
    if fields["number"] != page:
        problems.append(f"page {fields['number']} returned for page {page}")
    if fields["size"] != size:
        problems.append(f"size {fields['size']} returned for size {size}")
    if pages != math.ceil(total / size):
        problems.append(f"totalPages {pages} for totalElements {total} at size {size}")
    expected = max(0, min(size, total - page * size))
    if len(content) != expected:
        problems.append(f"{len(content)} items on page {page} of {pages} (expected {expected})")
    if problems:
        raise ResponseFormatError("contradicting page envelope: " + "; ".join(problems))
    return Page(content, page, size, total, pages)


def parse_message(body: bytes) -> dict[str, Any]:
    """:raises ResponseFormatError: unless ``body`` is one voice message object."""
    data = _json_object(body)
    if not _is_message(data):
        raise ResponseFormatError("the body is not a voice message with a string messageId")
    return data


def _is_message(item: object) -> bool:
    return isinstance(item, dict) and isinstance(item.get("messageId"), str)


#: msgspec decodes a 2,000-message page in less than half the time of ``json.loads`` (measured in
#: ``benchmarks/RESULTS.md``); it is the client's hottest path.
_json_decoder = msgspec.json.Decoder()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = _json_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ResponseFormatError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResponseFormatError(f"the body is a JSON {type(data).__name__}, not an object")
    return data


# --------------------------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True)
class RetryPolicy:
    """
    Limits on retrying one call.

    :param max_retries: retries after the first attempt (0 = no retry).
    :param max_retry_wait: cap on one wait, in seconds, ``Retry-After`` included.
    :param max_retry_time: cap on the total time one call may spend, in seconds; a retry whose wait
        would end after it is not made.
    """

    max_retries: int = 8
    max_retry_wait: float = 60.0
    max_retry_time: float = 600.0

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """
        :param retry_number: 1 for the first retry.
        :return: exponential backoff with jitter: a random wait in the upper half of
            ``BACKOFF_BASE * 2 ** (retry_number - 1)``, capped at ``max_retry_wait``.
        """
        ceiling = min(self.max_retry_wait, BACKOFF_BASE * 2 ** (retry_number - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """
    :param value: a ``Retry-After`` header: seconds or an HTTP date.
    :param now: the current wall-clock time (aware), for the HTTP-date form.
    :return: seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Success(Generic[T]):
    """The call succeeded with ``value``."""

    value: T


@dataclass(frozen=True)
class Retry:
    """Send the request again after ``wait`` seconds."""

    wait: float
    reason: str


@dataclass(frozen=True)
class RefreshToken:
    """Get a new token (discarding the rejected one), then send the request again at once."""

    status: int


#: ``deadline``: no complete response within ``request_deadline`` (a trickling server, say).
TransportErrorKind = Literal["connect", "timeout", "deadline", "protocol", "tls"]


class Call(Generic[T]):
    """
    The decisions for one logical call: its retries and its single token refresh.

    A transport sends :attr:`request`, then hands the outcome to :meth:`on_response` or
    :meth:`on_transport_error` and does what the returned decision says. Permanent failures and
    exhausted retries are raised as typed errors.

    :param request: what to send.
    :param parse: reads a 2xx body; raises :class:`ResponseFormatError` when it is malformed.
    :param policy: retry limits.
    :param started: monotonic time of the first attempt.
    :param secrets: values to scrub from any text taken from a response or an exception.
    """

    def __init__(
        self,
        request: Request,
        parse: Callable[[bytes], T],
        policy: RetryPolicy,
        *,
        started: float,
        secrets: Iterable[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.request = request
        self.parse = parse
        self.policy = policy
        self.started = started
        self.secrets = {s for s in secrets if s}
        self.retries = 0
        self.refreshed = False
        self._rng = rng
        self._last_failure = ""
        #: the ``Retry-After`` wait (seconds, uncapped) of the last failure, ``None`` when it had none
        self._last_retry_after: float | None = None

    def on_response(
        self, response: Response, *, now: float, wall_now: datetime | None = None
    ) -> Success[T] | Retry | RefreshToken:
        """
        :param now: monotonic time now.
        :param wall_now: aware wall-clock time now (for ``Retry-After`` dates); defaults to the clock.
        """
        status = response.status
        if 200 <= status < 300:
            try:
                return Success(self.parse(response.body))
            except ResponseFormatError as exc:
                failure = f"HTTP {status} with {self.redact(str(exc))}"
                return self._retry_or_raise(failure, None, now, VoiceTrackResponseError)
        if status in (401, 403) and self.request.needs_token and not self.refreshed:
            self.refreshed = True
            return RefreshToken(status)
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), wall_now or pendulum.now("UTC")
            )
            return self._retry_or_raise(f"HTTP {status}", retry_after, now, VoiceTrackTransientError)
        raise error_from_response(response, self.request.label, self.redact)

    def on_transport_error(self, kind: TransportErrorKind, detail: str, *, now: float) -> Retry:
        """
        :param kind: ``tls`` fails at once; ``connect``, ``timeout``, ``deadline`` and ``protocol`` are
            retried.
        :param detail: the library's description of the error.
        """
        detail = self.redact(detail)
        host = urlsplit(self.request.url).netloc
        if kind == "tls":
            raise VoiceTrackConnectionError(
                f"{self.request.label}: TLS with {host} failed: {detail}; check the certificate or the "
                "connection's verify_ssl extra",
                kind="tls",
            )
        if kind == "connect":
            retry = self._next_retry(f"cannot connect to {host}: {detail}", None, now)
            if retry is None:
                raise VoiceTrackConnectionError(
                    f"{self.request.label}: host {host} unreachable ({self._give_up_text(now)})",
                    kind="unreachable",
                )
            return retry
        return self._retry_or_raise(f"{kind} error: {detail}", None, now, VoiceTrackTransientError)

    def redact(self, text: str) -> str:
        """:return: ``text`` with every known secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _retry_or_raise(
        self, failure: str, retry_after: float | None, now: float, error: type[Exception]
    ) -> Retry:
        retry = self._next_retry(failure, retry_after, now)
        if retry is None:
            text = f"{self.request.label}: {self._give_up_text(now)}"
            if issubclass(error, VoiceTrackTransientError):
                raise error(text, retry_after=self._last_retry_after)
            raise error(text)
        return retry

    def _next_retry(self, failure: str, retry_after: float | None, now: float) -> Retry | None:
        """:return: the next retry, or ``None`` when the limits forbid one."""
        self._last_failure = failure
        self._last_retry_after = retry_after
        wait = self.policy.backoff(self.retries + 1, self._rng) if retry_after is None else retry_after
        wait = min(wait, self.policy.max_retry_wait)
        if self.retries >= self.policy.max_retries or now - self.started + wait > self.policy.max_retry_time:
            return None
        self.retries += 1
        return Retry(wait, failure)

    def _give_up_text(self, now: float) -> str:
        asked = "" if self._last_retry_after is None else f" (Retry-After: {self._last_retry_after:g} s)"
        return (
            f"giving up after {self.retries} retries in {now - self.started:.1f} s "
            f"(max_retries={self.policy.max_retries}, max_retry_time={self.policy.max_retry_time:g} s); "
            f"last failure: {self._last_failure}{asked}"
        )


def error_from_response(
    response: Response, context: str, redact: Callable[[str], str] = lambda text: text
) -> VoiceTrackAPIError:
    """
    Map an error response to a typed exception.

    Reads the API's ``{code, developerMessage, properties}`` body, and the token endpoint's
    ``{error, message}`` / ``{error, error_description}`` bodies.

    :param context: what was being done, e.g. ``"POST /voice/tracking"``.
    :param redact: scrubs secrets from text taken from the body.
    """
    try:
        data = json.loads(response.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    code = message = ""
    properties: dict[str, Any] = {}
    if isinstance(data, dict):
        code = str(data.get("code") or data.get("error") or "")
        message = str(
            data.get("developerMessage") or data.get("message") or data.get("error_description") or ""
        )
        if isinstance(data.get("properties"), dict):
            properties = {redact(str(key)): redact(str(value)) for key, value in data["properties"].items()}
    args = (response.status, redact(code), redact(message), properties, context)
    if response.status == 401:
        return VoiceTrackAuthError(*args, reason="credentials")
    if response.status == 403:
        return VoiceTrackAuthError(*args, reason="permissions")
    if response.status == 404:
        return VoiceTrackNotFoundError(*args)
    return VoiceTrackAPIError(*args)


# --------------------------------------------------------------------------------------------
# Search accounting

#: Log search progress every this many pages.
PROGRESS_EVERY_PAGES = 10


@dataclass
class SearchStats:
    """
    Counters of one search, exposed as the hook's ``last_search_stats``.

    ``total_elements`` is the sum of each window's latest ``totalElements``.
    """

    windows: int = 0
    pages: int = 0
    records: int = 0
    duplicates: int = 0
    total_elements: int = 0
    refetched_pages: int = 0
    pages_planned: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """:return: the counters (``records_per_second`` included) as a plain dict."""
        return {
            "windows": self.windows,
            "pages": self.pages,
            "records": self.records,
            "duplicates": self.duplicates,
            "total_elements": self.total_elements,
            "refetched_pages": self.refetched_pages,
            "pages_planned": self.pages_planned,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds, 1) if self.seconds else 0.0,
        }

    def finish(self) -> None:
        """Record the search's duration."""
        self.seconds = time.monotonic() - self.started

    def progress_due(self) -> bool:
        """:return: whether a progress line is due (every :data:`PROGRESS_EVERY_PAGES` pages)."""
        return self.pages % PROGRESS_EVERY_PAGES == 0

    def progress_line(self) -> str:
        """:return: pages done of those known so far, records, records per second."""
        elapsed = time.monotonic() - self.started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return (
            f"voice tracking: {self.pages}/{self.pages_planned} pages, {self.records} records, "
            f"{rate:.0f} records/s"
        )


class PagePlan:
    """
    Which page of a listing to fetch next.

    Without ``numbers``: page 0 alone first, then pages 1 up to the last, following ``totalPages``
    when a later page reports more (messages were added while paging: reading up to the last page
    the first page announced would miss the messages pushed past it). With ``numbers``: those pages.
    """

    def __init__(self, numbers: Iterable[int] | None = None) -> None:
        #: whether this plan reads the whole listing (rather than pages to read again)
        self.is_first_pass = numbers is None
        self._numbers = None if numbers is None else iter(numbers)
        self._cursor = 0
        self._page_count = 1

    def next_number(self) -> int | None:
        """:return: the next page to request, or ``None`` when none is known now."""
        if self._numbers is not None:
            return next(self._numbers, None)
        if self._cursor >= self._page_count:
            return None
        self._cursor += 1
        return self._cursor - 1

    def seen(self, page: Page) -> None:
        """Take note of a fetched page's ``totalPages``."""
        self._page_count = page.total_pages if page.number == 0 else max(self._page_count, page.total_pages)


class WindowTally:
    """
    Accounting for one window of a search (or a whole listing without windows).

    Messages are de-duplicated by ``messageId``. When messages are added while paging, later pages
    shift: that repeats messages (dropped here), and pushes messages past the last page the first
    page announced (:class:`PagePlan` follows the growing ``totalPages``). Pages fetched
    concurrently can also be read out of order around an insertion, so that a message moves from a
    page read later into a page read earlier: such pages (a lower page reported a larger total)
    are listed by :meth:`stale_pages` to be read once more. At the end, the distinct messages must
    number at least the ``totalElements`` of the first page (nothing that existed is missing) and
    at most the largest ``totalElements`` seen.

    :param stats: the search's counters, updated as pages are accepted.
    """

    def __init__(self, stats: SearchStats) -> None:
        self.stats = stats
        self.seen: set[str] = set()
        self._totals: dict[int, int] = {}
        self._first_total: int | None = None

    def accept(self, page: Page) -> list[dict[str, Any]]:
        """:return: the page's messages not seen before in this window, in page order."""
        if self._first_total is None:
            self._first_total = page.total_elements
            self.stats.pages_planned += max(1, page.total_pages)
        elif page.number in self._totals:
            self.stats.refetched_pages += 1
        self._totals[page.number] = page.total_elements
        self.stats.pages += 1
        fresh = []
        for message in page.content:
            if message["messageId"] in self.seen:
                self.stats.duplicates += 1
            else:
                self.seen.add(message["messageId"])
                fresh.append(message)
        self.stats.records += len(fresh)
        return fresh

    def stale_pages(self) -> list[int]:
        """:return: pages read before an insertion that a lower page read after it may have shifted."""
        stale, highest = [], -1
        for number in sorted(self._totals):
            if self._totals[number] < highest:
                stale.append(number)
            highest = max(highest, self._totals[number])
        return stale

    def finish(self) -> str | None:
        """:return: a description of the count mismatch, or ``None`` when the count is right."""
        first = self._first_total or 0
        largest = max(self._totals.values(), default=0)
        self.stats.windows += 1
        self.stats.total_elements += largest
        if first <= len(self.seen) <= largest:
            return None
        return (
            f"{len(self.seen)} distinct messages read but the API reported totalElements={first} "
            f"at the start and {largest} at most"
        )
