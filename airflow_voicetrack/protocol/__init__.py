"""
The voice tracking protocol, free of I/O.

Everything the sync hook (``requests``) and the async hook (``httpx``) must agree on lives here, so
the two cannot drift apart, in one module per concern:

- :mod:`~.settings`: the leaf: the connection, its extras, the hook arguments, the retry policy;
- :mod:`~.http`: a request and a response, whatever library sends them;
- :mod:`~.query`: filters, dates, windows, and the API requests built from them;
- :mod:`~.bodies`: reading tokens, page envelopes and messages;
- :mod:`~.calls`: the call flow (:func:`call_flow`): after each response, succeed, refresh the
  token (401/403), retry or fail, as flows that a sync and an async driver run;
- :mod:`~.auth`: the token request, the flow that gets a token, the token cache;
- :mod:`~.idset`: the ids a window has seen (de-duplication);
- :mod:`~.limits`: how fast a connection may send in this process (:class:`Limiter`: adaptive
  concurrency, rate-limit pauses, a fixed rate) and the retry budget of a hook;
- :mod:`~.paging`: the accounting of a search (:class:`SearchRun`: windows, page plan, limit,
  totals, progress, the check that the date range was applied);
- :mod:`~.reads`: what each method of the hooks asks of the API: the runs of its searches, the
  flows of its other reads (counts, messages, the connection check).

Modules import one way, down this list's dependencies: ``settings`` imports only the leaves
:mod:`airflow_voicetrack.constants` and :mod:`airflow_voicetrack.extras`.

Every name stays importable from ``airflow_voicetrack.protocol``, as before the split.
"""

from __future__ import annotations

from airflow_voicetrack.constants import DEFAULT_MAX_CONCURRENCY
from airflow_voicetrack.protocol.auth import TokenCache, build_token_request, token_flow
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
from airflow_voicetrack.protocol.calls import (
    RETRYABLE_STATUSES,
    Action,
    Call,
    Flow,
    Gather,
    GetLimits,
    GetToken,
    RefreshToken,
    Retry,
    Send,
    Sleep,
    Success,
    TransportErrorKind,
    TransportFailure,
    allow_missing,
    call_flow,
    error_from_response,
    parse_retry_after,
    request_flow,
)
from airflow_voicetrack.protocol.http import Request, Response
from airflow_voicetrack.protocol.idset import IdSet
from airflow_voicetrack.protocol.limits import (
    Limiter,
    Limits,
    LimitStats,
    Permit,
    RetryBudget,
    connection_key,
)
from airflow_voicetrack.protocol.paging import (
    DATE_FILTER_TOLERANCE,
    PROGRESS_EVERY_PAGES,
    Budget,
    PageFetch,
    PagePlan,
    PageRequest,
    PageSource,
    SearchRun,
    SearchStats,
    WindowStartCheck,
    WindowTally,
)
from airflow_voicetrack.protocol.query import (
    SearchFilter,
    SearchQuery,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    build_search_request,
    format_datetime,
    normalize_filters,
    parse_datetime,
    parse_range,
    resolve_campaign_tracking_id,
    split_windows,
    validate_campaign_tracking_id,
    validate_limit,
    validate_page_size,
    validate_sort,
)
from airflow_voicetrack.protocol.reads import (
    campaign_run,
    connection_check_flow,
    conversation_run,
    count_flow,
    first_ids_flow,
    message_flow,
    messages_flow,
    required_campaign,
    search_query,
    search_run,
)
from airflow_voicetrack.protocol.settings import (
    BACKOFF_BASE,
    KNOWN_EXTRAS,
    RetryPolicy,
    Settings,
    basic_credentials,
    unknown_extras,
)

__all__ = [
    "BACKOFF_BASE",
    "DATE_FILTER_TOLERANCE",
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
    "PageSource",
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
    "WindowStartCheck",
    "WindowTally",
    "allow_missing",
    "basic_credentials",
    "build_campaign_request",
    "build_conversation_request",
    "build_message_request",
    "build_search_request",
    "build_token_request",
    "call_flow",
    "campaign_run",
    "connection_check_flow",
    "connection_key",
    "conversation_run",
    "count_flow",
    "error_from_response",
    "first_ids_flow",
    "format_datetime",
    "message_flow",
    "messages_flow",
    "normalize_filters",
    "parse_datetime",
    "parse_message",
    "parse_page",
    "parse_range",
    "parse_retry_after",
    "parse_token",
    "request_flow",
    "required_campaign",
    "resolve_campaign_tracking_id",
    "search_query",
    "search_run",
    "split_windows",
    "token_flow",
    "unknown_extras",
    "validate_campaign_tracking_id",
    "validate_limit",
    "validate_page_size",
    "validate_sort",
]
