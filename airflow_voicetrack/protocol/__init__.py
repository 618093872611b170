"""
The voice tracking protocol, free of I/O.

Everything the sync hook (``requests``) and the async hook (``httpx``) must agree on lives here, so
the two cannot drift apart, in one module per concern:

- :mod:`~.settings`: validating the connection, its extras and the hook arguments;
- :mod:`~.query`: filters, dates, windows, and the requests built from them;
- :mod:`~.bodies`: reading tokens, page envelopes and messages;
- :mod:`~.decisions`: after each response, succeed, refresh the token, retry or fail, as flows
  (:func:`call_flow`) that a sync and an async driver run;
- :mod:`~.limits`: how fast a connection may send in this process (:class:`Limiter`: adaptive
  concurrency, rate-limit pauses, a fixed rate) and the retry budget of a hook;
- :mod:`~.paging`: the accounting of a search (:class:`SearchRun`: windows, page plan, limit,
  de-duplication, totals, progress).

Every name stays importable from ``airflow_voicetrack.protocol``, as before the split.
"""

from __future__ import annotations

from airflow_voicetrack.constants import DEFAULT_MAX_CONCURRENCY
from airflow_voicetrack.protocol.bodies import (
    TOKEN_RENEW_SHARE,
    Page,
    RawMessage,
    ResponseFormatError,
    Token,
    parse_message,
    parse_page,
    parse_token,
)
from airflow_voicetrack.protocol.decisions import (
    BACKOFF_BASE,
    RETRYABLE_STATUSES,
    Action,
    Call,
    Flow,
    Gather,
    GetLimits,
    GetToken,
    RefreshToken,
    Retry,
    RetryPolicy,
    Send,
    Sleep,
    Success,
    TokenCache,
    TransportErrorKind,
    TransportFailure,
    allow_missing,
    call_flow,
    error_from_response,
    parse_retry_after,
    request_flow,
    token_flow,
)
from airflow_voicetrack.protocol.limits import (
    Limiter,
    Limits,
    LimitStats,
    Permit,
    RetryBudget,
    connection_key,
)
from airflow_voicetrack.protocol.paging import (
    PROGRESS_EVERY_PAGES,
    Budget,
    IdSet,
    PageFetch,
    PagePlan,
    PageRequest,
    SearchRun,
    SearchStats,
    WindowTally,
    count_flow,
    first_ids_flow,
    messages_flow,
)
from airflow_voicetrack.protocol.query import (
    Request,
    Response,
    SearchFilter,
    SearchQuery,
    basic_credentials,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    build_search_request,
    build_token_request,
    format_datetime,
    normalize_filters,
    parse_datetime,
    parse_range,
    split_windows,
    validate_limit,
    validate_page_size,
    validate_sort,
)
from airflow_voicetrack.protocol.settings import (
    KNOWN_EXTRAS,
    Settings,
    unknown_extras,
)

__all__ = [
    "BACKOFF_BASE",
    "DEFAULT_MAX_CONCURRENCY",
    "KNOWN_EXTRAS",
    "PROGRESS_EVERY_PAGES",
    "RETRYABLE_STATUSES",
    "TOKEN_RENEW_SHARE",
    "Action",
    "Budget",
    "Call",
    "Flow",
    "Gather",
    "GetLimits",
    "GetToken",
    "IdSet",
    "LimitStats",
    "Limiter",
    "Limits",
    "Page",
    "PageFetch",
    "PagePlan",
    "PageRequest",
    "Permit",
    "RawMessage",
    "RefreshToken",
    "Request",
    "Response",
    "ResponseFormatError",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "SearchFilter",
    "SearchQuery",
    "SearchRun",
    "SearchStats",
    "Send",
    "Settings",
    "Sleep",
    "Success",
    "Token",
    "TokenCache",
    "TransportErrorKind",
    "TransportFailure",
    "WindowTally",
    "allow_missing",
    "basic_credentials",
    "build_campaign_request",
    "build_conversation_request",
    "build_message_request",
    "build_search_request",
    "build_token_request",
    "call_flow",
    "connection_key",
    "count_flow",
    "error_from_response",
    "first_ids_flow",
    "format_datetime",
    "messages_flow",
    "normalize_filters",
    "parse_datetime",
    "parse_message",
    "parse_page",
    "parse_range",
    "parse_retry_after",
    "parse_token",
    "request_flow",
    "split_windows",
    "token_flow",
    "unknown_extras",
    "validate_limit",
    "validate_page_size",
    "validate_sort",
]
