"""
Hooks for Routee's voice tracking API: :class:`VoiceTrackHook` (sync, ``requests``) and
:class:`VoiceTrackAsyncHook` (async, ``httpx``, for triggers).

Both are thin transports around :mod:`airflow_voicetrack.protocol`, which builds every request and
decides after every response whether to succeed, refresh the token, retry or fail, so the two
behave the same. Connection: ``login`` = application id, ``password`` = application secret,
``host`` = API base URL, extras as declared in the provider info (see :class:`Settings`).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property, lru_cache, partial
from typing import Any, TypeVar

import anyio
import httpx
import pendulum
import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from airflow_voicetrack.exceptions import (
    VoiceTrackAuthError,
    VoiceTrackConnectionError,
    VoiceTrackConsistencyError,
    VoiceTrackError,
    VoiceTrackNotFoundError,
)
from airflow_voicetrack.protocol import (
    Call,
    Page,
    PagePlan,
    RefreshToken,
    Request,
    Response,
    Retry,
    SearchFilter,
    SearchQuery,
    SearchStats,
    Settings,
    Success,
    Token,
    TransportErrorKind,
    WindowTally,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    build_token_request,
    format_datetime,
    parse_message,
    parse_page,
    parse_token,
    validate_limit,
    validate_sort,
)

T = TypeVar("T")
Filters = Iterable[Mapping[str, Any] | SearchFilter] | None
DateLike = datetime | str
#: Builds the request of one page: ``(page, size) -> Request``.
PageRequest = Callable[[int, int], Request]


class _Budget:
    """
    How many more messages a search with a ``limit`` may yield, and so which pages it may request.

    Without a limit every page may be requested. With one, a page is requested only while the pages
    already requested but not yet read (each up to ``page_size`` messages) cannot fill what is left
    of the limit: when ``limit <= page_size`` a search makes exactly one page request.

    :param limit: the most messages to yield, or ``None``.
    :param page_size: messages per page.
    """

    def __init__(self, limit: int | None, page_size: int) -> None:
        self.limit = limit
        self.page_size = page_size
        self.yielded = 0

    @property
    def exhausted(self) -> bool:
        """Whether the limit has been reached."""
        return self.limit is not None and self.yielded >= self.limit

    def allows(self, unread_pages: int) -> bool:
        """:return: whether one more page may be requested while ``unread_pages`` are outstanding."""
        return self.limit is None or unread_pages * self.page_size < self.limit - self.yielded

    def take(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:return: the head of ``messages`` that fits in the limit, counted as yielded."""
        if self.limit is not None:
            messages = messages[: max(0, self.limit - self.yielded)]
        self.yielded += len(messages)
        return messages


def _error_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc``, its causes, and the reasons/arguments libraries wrap their errors in."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(e for e in (item.__cause__, item.__context__, getattr(item, "reason", None)) if e)
        todo.extend(arg for arg in item.args if isinstance(arg, BaseException))


def _deadline_text(seconds: float) -> str:
    return f"no complete response within request_deadline={seconds:g} s"


def _is_tls_error(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) for e in _error_chain(exc))


class _VoiceTrackHookBase(BaseHook):
    """Arguments, connection settings and search orchestration shared by the sync and async hooks."""

    conn_name_attr = "voicetrack_conn_id"
    default_conn_name = "voicetrack_default"
    conn_type = "voicetrack"
    hook_name = "Routee Voice Tracking"

    def __init__(
        self,
        voicetrack_conn_id: str = default_conn_name,
        *,
        page_size: int | None = None,
        max_concurrency: int | None = None,
        window: timedelta | None = None,
        strict: bool = False,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        max_retry_time: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.voicetrack_conn_id = voicetrack_conn_id
        self.strict = strict
        self._overrides = {
            "page_size": page_size,
            "max_concurrency": max_concurrency,
            "window": window,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_retries": max_retries,
            "max_retry_wait": max_retry_wait,
            "max_retry_time": max_retry_time,
        }
        #: counters of the last search, set when it finishes (see :class:`SearchStats`)
        self.last_search_stats: dict[str, Any] | None = None

    def _settings_from(self, conn: Any, extra: Mapping[str, Any]) -> Settings:
        """Validate the connection, once per hook: so the ``verify_ssl`` warning comes once per task."""
        settings = Settings.from_connection(
            conn_id=self.voicetrack_conn_id,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=extra,
            overrides=self._overrides,
        )
        if not settings.verify_ssl:
            self.log.warning(
                "Connection %r has verify_ssl off: TLS certificates are not verified, so a machine on the "
                "network path can pose as the API and read the application secret; turn verify_ssl on "
                "outside test servers",
                self.voicetrack_conn_id,
            )
        return settings

    @staticmethod
    def _search_sources(
        settings: Settings, query: SearchQuery, window: timedelta | None
    ) -> list[tuple[str, PageRequest]]:
        """:return: ``(label, page request builder)`` for each window of ``query``."""
        sources: list[tuple[str, PageRequest]] = []
        for bounds in query.windows(window):
            label = "window [{}, {})".format(*(format_datetime(b) if b else "-" for b in bounds))
            sources.append((label, partial(query.page_request, settings.base_url, bounds)))
        return sources

    def _refetch_plan(self, label: str, tally: WindowTally, done: PagePlan) -> PagePlan | None:
        """:return: after the first pass over a window, a plan to read its stale pages again, if any."""
        stale = tally.stale_pages() if done.is_first_pass else []
        if not stale:
            return None
        self.log.info("%s: messages were added while paging; reading pages %s again", label, stale)
        return PagePlan(stale)

    def _on_window_done(self, label: str, tally: WindowTally) -> None:
        mismatch = tally.finish()
        if mismatch is None:
            return
        if self.strict:
            raise VoiceTrackConsistencyError(f"{label}: {mismatch}")
        self.log.warning("%s: %s", label, mismatch)

    def _on_search_done(self, stats: SearchStats) -> None:
        stats.finish()
        self.last_search_stats = stats.as_dict()
        self.log.info("voice tracking search done: %s", self.last_search_stats)


# ------------------------------------------------------------------------------------------------
# Sync


class _Deadline:
    """
    A watchdog for one request in this thread: when ``seconds`` pass before it is over, it shuts the
    request's socket down, which ends a read that is blocked or being fed one byte at a time.

    ``read_timeout`` bounds each read, not the request: urllib3 keeps reading until it has the bytes
    it asked for, so a server that trickles a body never trips it, and no check between reads can
    run. The connection pools below tell the watchdog which connection the request took.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.connection: Any = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    @classmethod
    def note_connection(cls, connection: Any) -> None:
        """Called by the pool in the requesting thread: the connection the request is sent on."""
        deadline = getattr(cls._current, "deadline", None)
        if deadline is not None:
            deadline.connection = connection

    def __enter__(self) -> _Deadline:
        self._current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._current.deadline = None

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with suppress(OSError):  # already closed: the request is ending anyway
                sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _Deadline.note_connection(connection)
        return connection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _Deadline.note_connection(connection)
        return connection


class _DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose pools let :class:`_Deadline` find the connection of a request."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }


class _SyncTransport:
    """
    Sends :class:`Request` objects with a ``requests`` session and follows the core's decisions.

    Holds the access token (thread-safe). ``requests`` drops the ``Authorization`` header when a
    redirect leads to another host.
    """

    def __init__(self, settings: Settings, hook: BaseHook) -> None:
        self.settings = settings
        self.log = hook.log
        self.session = requests.Session()
        adapter = _DeadlineAdapter(pool_connections=2, pool_maxsize=settings.max_concurrency + 1)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.verify = settings.verify_ssl
        self._token: Token | None = None
        self._token_lock = threading.Lock()

    def token(self, rejected: Token | None = None) -> Token:
        """
        :param rejected: a token the API refused; it is replaced unless another thread did already.
        :return: a fresh token, fetched when needed.
        """
        with self._token_lock:
            token = self._token
            if token is None or token is rejected or not token.is_fresh(time.monotonic()):
                token = self._token = self.call(
                    build_token_request(self.settings), partial(parse_token, now=time.monotonic())
                )
                mask_secret(token.value)
            return token

    def call(self, request: Request, parse: Callable[[bytes], T] | None) -> T:
        """
        Send ``request`` until the core says it succeeded, retrying and refreshing the token as told.

        :param parse: reads the 2xx body; ``None`` for the token request.
        """
        started = time.monotonic()
        parser: Callable[[bytes], Any] = parse or partial(parse_token, now=started)
        call = Call(
            request, parser, self.settings.retry_policy, started=started, secrets=self.settings.secrets
        )
        token = self.token() if request.needs_token else None
        while True:
            if token is not None:
                call.secrets.add(token.value)
            decision = self._attempt(call, token)
            if isinstance(decision, Success):
                return decision.value
            if isinstance(decision, RefreshToken):
                self.log.info("%s: HTTP %s, getting a new token", request.label, decision.status)
                token = self.token(rejected=token)
                continue
            self.log.warning("%s: retrying in %.2f s after %s", request.label, decision.wait, decision.reason)
            time.sleep(decision.wait)

    def _attempt(self, call: Call[Any], token: Token | None) -> Success[Any] | Retry | RefreshToken:
        request = call.request
        headers = dict(request.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        deadline = _Deadline(self.settings.request_deadline)
        try:
            with deadline:
                reply = self.session.request(
                    request.method,
                    request.url,
                    params=request.params or None,
                    json=request.json,
                    data=request.data,
                    headers=headers,
                    timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                )
        except requests.RequestException as exc:
            if deadline.expired:
                return call.on_transport_error(
                    "deadline", _deadline_text(deadline.seconds), now=time.monotonic()
                )
            kind = self._error_kind(exc)
            if kind is None:
                raise
            return call.on_transport_error(kind, str(exc), now=time.monotonic())
        return call.on_response(
            Response(reply.status_code, reply.headers, reply.content), now=time.monotonic()
        )

    @staticmethod
    def _error_kind(exc: requests.RequestException) -> TransportErrorKind | None:
        if isinstance(exc, requests.exceptions.SSLError) or _is_tls_error(exc):
            return "tls"
        if isinstance(exc, requests.exceptions.ConnectTimeout) or any(
            isinstance(e, NewConnectionError) for e in _error_chain(exc)
        ):
            return "connect"
        if isinstance(exc, requests.Timeout):
            return "timeout"
        if isinstance(
            exc,
            (
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
        ):
            return "protocol"
        return None

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


class VoiceTrackHook(_VoiceTrackHookBase):
    """
    Read voice messages from Routee's voice tracking API.

    :param voicetrack_conn_id: the Airflow connection (type ``voicetrack``).
    :param page_size: messages per page, 1 to 2000; overrides the ``page_size`` extra (default 2000).
    :param max_concurrency: pages (or messages) fetched at once; overrides ``max_concurrency`` (4).
    :param window: a long search range is split into windows this long; overrides ``window_hours`` (24 h).
    :param strict: raise :class:`VoiceTrackConsistencyError` instead of logging a warning when a
        window's message count differs from the API's ``totalElements``.
    :param connect_timeout: seconds; overrides the extra (10).
    :param read_timeout: seconds; overrides the extra (60).
    :param max_retries: retries of one call on 429, 5xx, network errors, malformed bodies; overrides
        the extra (8).
    :param max_retry_wait: cap on one wait, ``Retry-After`` included, seconds; overrides the extra (60).
    :param max_retry_time: cap on the time one call spends retrying, seconds (600).
    """

    @cached_property
    def settings(self) -> Settings:
        """The validated connection and arguments (read from the connection once)."""
        conn = self.get_connection(self.voicetrack_conn_id)
        return self._settings_from(conn, conn.extra_dejson)

    @cached_property
    def _transport(self) -> _SyncTransport:
        return _SyncTransport(self.settings, self)

    def search_messages(
        self,
        date_start: DateLike | None,
        date_end: DateLike | None,
        *,
        filters: Filters = None,
        campaign_id: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        tagged: bool | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Every message created in ``[date_start, date_end)`` that matches, each exactly once, lazily.

        The range is searched window by window; within a window page 0 is read first, then the
        other pages concurrently (at most ``max_concurrency`` in flight), yielded in page order.
        Arguments are validated when this is called, before any request.

        Either bound may be ``None``: the range is then open on that side, the parameter
        (``dateStart``/``dateEnd``) is not sent, and the search is not split into windows (it is
        read as one window), e.g. ``search_messages(None, None, campaign_id="...")``. Routee's
        documentation does not say whether the real API accepts a search without both bounds (the
        emulator does); :class:`~airflow_voicetrack.operators.voicetrack.VoiceTrackingOperator`
        therefore keeps requiring both. Pass ``None`` explicitly: no bound is the whole account.

        :param date_start: aware datetime, pendulum DateTime or ISO-8601 string (inclusive), or
            ``None`` for no lower bound.
        :param date_end: same (exclusive), or ``None`` for no upper bound; must be after
            ``date_start`` when both are set.
        :param filters: dicts ``{"fieldName", "searchOperator", "searchTerm"}`` or :class:`SearchFilter`.
        :param campaign_id: only messages of this campaign (tracking id).
        :param sort: ``field,asc|desc``, passed to the API; default: the API's own order.
        :param page_size: messages per page (default: the hook's).
        :param tagged: the API's boolean filter; sent only when set.
        :param limit: stop after this many messages (``None``: all). No page is requested beyond
            what the limit can need: with ``limit <= page_size`` exactly one page request is made
            (per window read; one window when the range is open or shorter than the window), and
            ``limit=0`` makes none. A search stopped by its limit skips the ``totalElements`` check.
        """
        query = SearchQuery.build(
            date_start,
            date_end,
            filters=filters,
            campaign_id=campaign_id,
            sort=sort,
            tagged=tagged,
            page_size=self.settings.page_size if page_size is None else page_size,
            require_range=False,
        )
        budget = _Budget(validate_limit(limit), query.page_size)
        return self._collect(
            self._search_sources(self.settings, query, self.settings.window), query.page_size, budget
        )

    def count_messages(
        self,
        date_start: DateLike | None = None,
        date_end: DateLike | None = None,
        *,
        filters: Filters = None,
        campaign_id: str | None = None,
        tagged: bool | None = None,
    ) -> int:
        """
        :return: the API's ``totalElements`` for the search, with one request (a page of one).
        """
        query = SearchQuery.build(
            date_start,
            date_end,
            filters=filters,
            campaign_id=campaign_id,
            tagged=tagged,
            page_size=1,
            require_range=False,
        )
        request = query.page_request(self.settings.base_url, (query.date_start, query.date_end), 0, 1)
        return self._transport.call(request, partial(parse_page, page=0, size=1)).total_elements

    def get_message(self, message_id: str) -> dict[str, Any]:
        """
        :return: one voice message.
        :raises VoiceTrackNotFoundError: when the API does not know it.
        """
        request = build_message_request(self.settings.base_url, message_id)
        return self._transport.call(request, parse_message)

    def get_messages(
        self, message_ids: Iterable[str], *, missing_ok: bool = False
    ) -> dict[str, dict[str, Any] | None]:
        """
        Fetch several messages concurrently (at most ``max_concurrency`` at once).

        :param missing_ok: map unknown ids to ``None`` instead of raising :class:`VoiceTrackNotFoundError`.
        :return: ``{message_id: message or None}`` in the order of ``message_ids``, duplicates once.
        """
        requests_by_id = {mid: build_message_request(self.settings.base_url, mid) for mid in message_ids}

        def fetch(message_id: str) -> dict[str, Any] | None:
            try:
                return self._transport.call(requests_by_id[message_id], parse_message)
            except VoiceTrackNotFoundError:
                if missing_ok:
                    return None
                raise

        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="voicetrack") as pool:
            return dict(zip(requests_by_id, pool.map(fetch, requests_by_id), strict=True))

    def get_conversation(self, conversation_tracking_id: str) -> Iterator[dict[str, Any]]:
        """:return: the dial parts (messages) of one conversation, lazily, each once."""
        base, size = self.settings.base_url, self.settings.page_size
        build_conversation_request(base, conversation_tracking_id, page=0, size=size)  # validate now
        source = partial(self._conversation_page, conversation_tracking_id)
        return self._collect(
            [(f"conversation {conversation_tracking_id}", source)], size, _Budget(None, size)
        )

    def _conversation_page(self, conversation_tracking_id: str, page: int, size: int) -> Request:
        return build_conversation_request(
            self.settings.base_url, conversation_tracking_id, page=page, size=size
        )

    def get_campaign_messages(
        self, campaign_id: str, *, sort: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """
        :param sort: ``field,asc|desc``, passed to the API.
        :param page_size: messages per page (default: the hook's).
        :return: the messages of one campaign, lazily, each once.
        """
        size = self.settings.page_size if page_size is None else page_size
        build_campaign_request(
            self.settings.base_url, campaign_id, page=0, size=size, sort=validate_sort(sort)
        )
        source = partial(self._campaign_page, campaign_id, sort)
        return self._collect([(f"campaign {campaign_id}", source)], size, _Budget(None, size))

    def _campaign_page(self, campaign_id: str, sort: str | None, page: int, size: int) -> Request:
        return build_campaign_request(self.settings.base_url, campaign_id, page=page, size=size, sort=sort)

    def test_connection(self) -> tuple[bool, str]:
        """
        Get a token and run a one-item search over the last day, without retries.

        :return: ``(ok, message)``; the message says what failed and never holds a secret.
        """
        try:
            settings = replace(self.settings, max_retries=0)
        except ValueError as exc:
            return False, f"Invalid connection: {exc}"
        transport = _SyncTransport(settings, self)
        now = pendulum.now("UTC")
        try:
            transport.token()
            query = SearchQuery.build(now.subtract(days=1), now, page_size=1)
            request = query.page_request(settings.base_url, (query.date_start, query.date_end), 0, 1)
            total = transport.call(request, partial(parse_page, page=0, size=1)).total_elements
        except VoiceTrackError as exc:
            return False, _describe_failure(exc)
        finally:
            transport.close()
        return True, f"Connection works: got a token, and a search found {total} messages in the last day"

    def _collect(
        self, sources: list[tuple[str, PageRequest]], size: int, budget: _Budget
    ) -> Iterator[dict[str, Any]]:
        stats = SearchStats()
        self.last_search_stats = None
        if budget.exhausted:  # limit=0
            self._on_search_done(stats)
            return
        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="voicetrack") as pool:
            for label, page_request in sources:
                fetch = partial(self._fetch_page, page_request, size)
                tally = WindowTally(stats)
                plan: PagePlan | None = PagePlan()
                while plan is not None:
                    pages = self._pages(pool, fetch, plan, budget)
                    try:
                        for page in pages:
                            yield from budget.take(tally.accept(page))
                            if budget.exhausted:
                                # Stopped by the limit: the window's count is incomplete by design.
                                stats.records = budget.yielded
                                self._on_search_done(stats)
                                return
                            if stats.progress_due():
                                self.log.info(stats.progress_line())
                    finally:
                        pages.close()
                    plan = self._refetch_plan(label, tally, plan)
                self._on_window_done(label, tally)
        self._on_search_done(stats)

    def _pages(
        self, pool: ThreadPoolExecutor, fetch: Callable[[int], Page], plan: PagePlan, budget: _Budget
    ) -> Generator[Page, None, None]:
        """
        The pages of ``plan``, at most ``max_concurrency`` fetched ahead (fewer when ``budget`` says
        they cannot be needed), yielded in plan order.
        """
        pending: deque[Future[Page]] = deque()

        def fill(unread: int) -> None:
            while (
                len(pending) < self.settings.max_concurrency
                and budget.allows(len(pending) + unread)
                and (number := plan.next_number()) is not None
            ):
                pending.append(pool.submit(fetch, number))

        fill(0)
        try:
            while pending:
                page = pending.popleft().result()
                plan.seen(page)
                fill(1)  # the page in hand is not counted in the budget yet
                yield page
                if not pending:  # the budget held pages back; the page read may have fallen short
                    fill(0)
        finally:
            for future in pending:
                future.cancel()

    def _fetch_page(self, page_request: PageRequest, size: int, number: int) -> Page:
        return self._transport.call(page_request(number, size), partial(parse_page, page=number, size=size))


def _describe_failure(exc: VoiceTrackError) -> str:
    if isinstance(exc, VoiceTrackAuthError):
        what = "Credentials rejected" if exc.reason == "credentials" else "Permission denied"
        return f"{what}: {exc}"
    if isinstance(exc, VoiceTrackConnectionError):
        what = "TLS failed" if exc.kind == "tls" else "Host unreachable"
        return f"{what}: {exc}"
    return f"Request failed: {exc}"


# ------------------------------------------------------------------------------------------------
# Async


async def _aget_connection(conn_id: str) -> Any:
    """Get a connection without blocking the event loop, on every supported Airflow version."""
    try:
        from airflow.providers.common.compat.connection import get_async_connection
    except ImportError:  # common-compat without the helper: run the sync lookup in a thread
        from asgiref.sync import sync_to_async

        return await sync_to_async(BaseHook.get_connection)(conn_id)
    return await get_async_connection(conn_id)


async def _amask_secret(value: str) -> None:
    """
    Register ``value`` with the secrets masker without stalling the event loop.

    ``add_mask`` recompiles one pattern of every secret the process has registered so far: in a
    long-lived triggerer that takes hundreds of milliseconds, so the compiling happens in a thread.
    Registering the same value again below is then cheap, and also tells the supervisor.
    """
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    await asyncio.to_thread(_secrets_masker().add_mask, value)
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3
        mask_secret(value)
    else:
        await amask_secret(value)


@lru_cache(maxsize=2)
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """
    The TLS context of every async client in this process, one per ``verify_ssl`` value.

    Building one loads the CA bundle: about a third of a second with the GIL held, which a triggerer
    starting a thousand triggers must not pay per trigger.
    """
    return httpx.create_ssl_context(verify=verify)


class _SharedToken:
    """
    The access token of one connection, shared by every async hook in one event loop.

    A triggerer runs many triggers for the same connection in one loop: they use one token between
    them, and when it must be renewed (it is about to expire, or the API rejected it) a single request
    fetches the next one for all waiters. That request runs as a task of its own, awaited through
    :func:`asyncio.shield`, so a trigger cancelled while waiting does not cancel it for the others;
    and on an HTTP client of its own, so a hook closed meanwhile cannot break it. One token per
    connection and lifetime also means one secret per lifetime for the secrets masker, whose cost
    grows with every secret a long-lived process registers.
    """

    #: event loop -> connection identity -> its shared token; ``dag.test()`` runs each trigger
    #: under its own ``asyncio.run``, and a token's lock and fetch task belong to one loop.
    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], _SharedToken]] = (
        weakref.WeakKeyDictionary()
    )
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.token: Token | None = None
        self.fetch: asyncio.Future[Token] | None = None

    @classmethod
    def of(cls, conn_id: str, settings: Settings) -> _SharedToken:
        """:return: the shared token of the connection (credentials included) in the running loop."""
        secret = hashlib.sha256(settings.client_secret.encode()).hexdigest()
        key = (conn_id, settings.token_url, settings.client_id, secret, settings.scope or "")
        loop = asyncio.get_running_loop()
        with cls._registry_lock:
            return cls._by_loop.setdefault(loop, {}).setdefault(key, cls())

    async def get(self, settings: Settings, hook: BaseHook, rejected: Token | None = None) -> Token:
        """
        :param rejected: a token the API refused; it is replaced unless another hook did already.
        :return: a fresh token, fetched once for every hook waiting for it.
        """
        token = self.token
        if token is not None and token is not rejected and token.is_fresh(time.monotonic()):
            return token
        if self.fetch is None:
            self.fetch = asyncio.ensure_future(self._fetch(settings, hook))
            # Retrieved here too: every waiter may have been cancelled when it fails.
            self.fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(self.fetch)

    async def _fetch(self, settings: Settings, hook: BaseHook) -> Token:
        try:
            transport = await asyncio.to_thread(_AsyncTransport, settings, hook)
            try:
                request = build_token_request(settings)
                token = await transport.call(request, partial(parse_token, now=time.monotonic()))
            finally:
                await transport.client.aclose()
            await _amask_secret(token.value)  # before any hook can use it
            self.token = token
            return token
        finally:
            self.fetch = None


class _AsyncTransport:
    """The async twin of :class:`_SyncTransport`, on an ``httpx.AsyncClient``."""

    def __init__(self, settings: Settings, hook: BaseHook) -> None:
        self.settings = settings
        self.hook = hook
        self.log = hook.log
        # httpx drops the Authorization header when a redirect leads to another origin.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            verify=_ssl_context(settings.verify_ssl),
            limits=httpx.Limits(max_connections=settings.max_concurrency + 1),
            follow_redirects=True,
        )

    async def token(self, rejected: Token | None = None) -> Token:
        """Async :meth:`_SyncTransport.token`, shared by the hooks of this connection and loop."""
        conn_id = getattr(self.hook, "voicetrack_conn_id", "")
        return await _SharedToken.of(conn_id, self.settings).get(self.settings, self.hook, rejected)

    async def call(self, request: Request, parse: Callable[[bytes], T] | None) -> T:
        """Async :meth:`_SyncTransport.call`."""
        started = time.monotonic()
        parser: Callable[[bytes], Any] = parse or partial(parse_token, now=started)
        call = Call(
            request, parser, self.settings.retry_policy, started=started, secrets=self.settings.secrets
        )
        token = await self.token() if request.needs_token else None
        while True:
            if token is not None:
                call.secrets.add(token.value)
            decision = await self._attempt(call, token)
            if isinstance(decision, Success):
                return decision.value
            if isinstance(decision, RefreshToken):
                self.log.info("%s: HTTP %s, getting a new token", request.label, decision.status)
                token = await self.token(rejected=token)
                continue
            self.log.warning("%s: retrying in %.2f s after %s", request.label, decision.wait, decision.reason)
            await asyncio.sleep(decision.wait)

    async def _attempt(self, call: Call[Any], token: Token | None) -> Success[Any] | Retry | RefreshToken:
        request = call.request
        headers = dict(request.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        try:
            # httpx's read timeout, like urllib3's, bounds each read: a trickled body needs a total.
            # anyio's own cancel scope (httpx runs on anyio): a task wrapped by asyncio.wait_for
            # could be left stuck in anyio's connect when the trigger is cancelled.
            with anyio.fail_after(self.settings.request_deadline):
                reply = await self.client.request(
                    request.method,
                    request.url,
                    params=request.params or None,
                    json=request.json,
                    data=request.data,
                    headers=headers,
                )
        except TimeoutError:
            deadline = self.settings.request_deadline
            return call.on_transport_error("deadline", _deadline_text(deadline), now=time.monotonic())
        except httpx.TransportError as exc:
            return call.on_transport_error(
                self._error_kind(exc), str(exc) or type(exc).__name__, now=time.monotonic()
            )
        return call.on_response(
            Response(reply.status_code, reply.headers, reply.content), now=time.monotonic()
        )

    @staticmethod
    def _error_kind(exc: httpx.TransportError) -> TransportErrorKind:
        if _is_tls_error(exc):
            return "tls"
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return "connect"
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        return "protocol"


class VoiceTrackAsyncHook(_VoiceTrackHookBase):
    """
    The async twin of :class:`VoiceTrackHook` for triggers: the same arguments and behaviour, on
    ``httpx``, with async connection access. Call :meth:`close` when done.
    """

    def __init__(
        self, voicetrack_conn_id: str = _VoiceTrackHookBase.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(voicetrack_conn_id, **kwargs)
        self._settings: Settings | None = None
        self._transport: _AsyncTransport | None = None
        # Concurrent first calls must share one client, and so one token.
        self._transport_lock = asyncio.Lock()

    async def get_settings(self) -> Settings:
        """The validated connection and arguments (read from the connection once)."""
        if self._settings is None:
            conn = await _aget_connection(self.voicetrack_conn_id)
            self._settings = self._settings_from(conn, await _aextra(conn))
        return self._settings

    async def _get_transport(self) -> _AsyncTransport:
        async with self._transport_lock:
            if self._transport is None:
                settings = await self.get_settings()
                # Building the client loads the CA bundle from disk: keep that off the event loop.
                self._transport = await asyncio.to_thread(_AsyncTransport, settings, self)
            return self._transport

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._transport is not None:
            await self._transport.client.aclose()
            self._transport = None

    async def count_messages(
        self,
        date_start: DateLike | None = None,
        date_end: DateLike | None = None,
        *,
        filters: Filters = None,
        campaign_id: str | None = None,
        tagged: bool | None = None,
    ) -> int:
        """Async :meth:`VoiceTrackHook.count_messages`."""
        query = SearchQuery.build(
            date_start,
            date_end,
            filters=filters,
            campaign_id=campaign_id,
            tagged=tagged,
            page_size=1,
            require_range=False,
        )
        settings = await self.get_settings()
        request = query.page_request(settings.base_url, (query.date_start, query.date_end), 0, 1)
        transport = await self._get_transport()
        return (await transport.call(request, partial(parse_page, page=0, size=1))).total_elements

    async def get_message(self, message_id: str) -> dict[str, Any]:
        """Async :meth:`VoiceTrackHook.get_message`."""
        settings = await self.get_settings()
        request = build_message_request(settings.base_url, message_id)
        return await (await self._get_transport()).call(request, parse_message)

    async def get_messages(
        self, message_ids: Iterable[str], *, missing_ok: bool = False
    ) -> dict[str, dict[str, Any] | None]:
        """Async :meth:`VoiceTrackHook.get_messages`."""
        settings = await self.get_settings()
        requests_by_id = {mid: build_message_request(settings.base_url, mid) for mid in message_ids}
        transport = await self._get_transport()
        slots = asyncio.Semaphore(settings.max_concurrency)

        async def fetch(message_id: str) -> dict[str, Any] | None:
            async with slots:
                try:
                    return await transport.call(requests_by_id[message_id], parse_message)
                except VoiceTrackNotFoundError:
                    if missing_ok:
                        return None
                    raise

        tasks = [asyncio.ensure_future(fetch(mid)) for mid in requests_by_id]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return dict(zip(requests_by_id, results, strict=True))

    def search_messages(
        self,
        date_start: DateLike | None,
        date_end: DateLike | None,
        *,
        filters: Filters = None,
        campaign_id: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        tagged: bool | None = None,
        limit: int | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """
        Async :meth:`VoiceTrackHook.search_messages` (open ranges and ``limit`` included): use
        ``async for``. The arguments are checked when this is called, the connection when iteration
        starts; before any request either way. It is an async generator: when stopping early
        without a ``limit``, close it (``contextlib.aclosing``) so pages read ahead are cancelled.
        """
        query = SearchQuery.build(
            date_start,
            date_end,
            filters=filters,
            campaign_id=campaign_id,
            sort=sort,
            tagged=tagged,
            page_size=1 if page_size is None else page_size,
            require_range=False,
        )
        return self._search(query, page_size, validate_limit(limit))

    async def _search(
        self, query: SearchQuery, page_size: int | None, limit: int | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        settings = await self.get_settings()
        if page_size is None:
            query = replace(query, page_size=settings.page_size)
        stats = SearchStats()
        self.last_search_stats = None
        budget = _Budget(limit, query.page_size)
        if budget.exhausted:  # limit=0
            self._on_search_done(stats)
            return
        transport = await self._get_transport()
        for label, page_request in self._search_sources(settings, query, settings.window):
            fetch = partial(self._fetch_page, transport, page_request, query.page_size)
            tally = WindowTally(stats)
            plan: PagePlan | None = PagePlan()
            while plan is not None:
                pages = self._pages(fetch, plan, settings.max_concurrency, budget)
                try:
                    async for page in pages:
                        for message in budget.take(tally.accept(page)):
                            yield message
                        if budget.exhausted:
                            # Stopped by the limit: the window's count is incomplete by design.
                            stats.records = budget.yielded
                            self._on_search_done(stats)
                            return
                        if stats.progress_due():
                            self.log.info(stats.progress_line())
                finally:
                    await pages.aclose()
                plan = self._refetch_plan(label, tally, plan)
            self._on_window_done(label, tally)
        self._on_search_done(stats)

    @staticmethod
    async def _pages(
        fetch: Callable[[int], Awaitable[Page]], plan: PagePlan, max_concurrency: int, budget: _Budget
    ) -> AsyncGenerator[Page, None]:
        """Async :meth:`VoiceTrackHook._pages`, with tasks."""
        pending: deque[asyncio.Future[Page]] = deque()

        def fill(unread: int) -> None:
            while (
                len(pending) < max_concurrency
                and budget.allows(len(pending) + unread)
                and (number := plan.next_number()) is not None
            ):
                pending.append(asyncio.ensure_future(fetch(number)))

        fill(0)
        try:
            while pending:
                page = await pending.popleft()
                plan.seen(page)
                fill(1)  # the page in hand is not counted in the budget yet
                yield page
                if not pending:  # the budget held pages back; the page read may have fallen short
                    fill(0)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    async def _fetch_page(
        transport: _AsyncTransport, page_request: PageRequest, size: int, number: int
    ) -> Page:
        return await transport.call(page_request(number, size), partial(parse_page, page=number, size=size))


async def _aextra(conn: Any) -> dict[str, Any]:
    """The connection's extras, read without a blocking call where Airflow offers one."""
    aextra = getattr(conn, "aextra_dejson", None)
    return await aextra() if aextra is not None else conn.extra_dejson
