"""
Hooks for Routee's voice tracking API: :class:`VoiceTrackHook` (sync) and :class:`VoiceTrackAsyncHook`.

Both are thin drivers of the flows of :mod:`airflow_voicetrack.protocol`, which build every request
and decide after every response whether to succeed, refresh the token, retry or fail, and which
pages a search fetches next: the sync driver sends with ``requests`` from a thread pool, the async
one with ``httpx`` from asyncio tasks, and that is all they do. Connection: ``login`` = application
id, ``password`` = application secret, ``host`` = API base URL, extras as declared in the provider
info (see :class:`~airflow_voicetrack.protocol.Settings`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import ssl
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property, lru_cache, partial
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio
import httpx
import pendulum
import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_voicetrack import transport
from airflow_voicetrack.exceptions import VoiceTrackAuthError, VoiceTrackConnectionError, VoiceTrackError
from airflow_voicetrack.protocol import (
    Action,
    Flow,
    Gather,
    GetLimits,
    GetToken,
    Limiter,
    Limits,
    PageFetch,
    PageSource,
    Response,
    RetryBudget,
    SearchFilter,
    SearchQuery,
    SearchRun,
    Send,
    Settings,
    Sleep,
    Token,
    TokenCache,
    TransportErrorKind,
    TransportFailure,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    connection_key,
    count_flow,
    format_datetime,
    messages_flow,
    parse_message,
    request_flow,
    resolve_campaign_tracking_id,
    token_flow,
    unknown_extras,
    validate_limit,
    validate_sort,
)

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")
Filters = Iterable[Mapping[str, Any] | SearchFilter] | None
DateLike = datetime | str


def _token(send: Send) -> str | None:
    return None if send.token is None else send.token.value


class _VoiceTrackHookBase(BaseHook, Generic[S]):
    """
    Arguments, connection settings, the search and the flow-backed methods of both hooks.

    ``S`` is what a search returns: an iterator (sync) or an async generator (async).
    """

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
        #: this hook's retries: its own, so one failing trigger cannot spend another's
        self.retry_budget = RetryBudget()

    def _limits(self, settings: Settings) -> Limits:
        """:return: the connection's limiter in this process, with this hook's retry budget."""
        key = connection_key(self.voicetrack_conn_id, settings.base_url, settings.client_id)
        limiter = Limiter.of(key, settings.max_concurrency, settings.max_requests_per_second)
        return Limits(limiter, self.retry_budget)

    def _settings_from(self, conn: Any, extra: Mapping[str, Any]) -> Settings:
        """Validate the connection, once per hook: so its warnings come once per task."""
        for problem in unknown_extras(extra, self.voicetrack_conn_id):
            self.log.warning("%s", problem)
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
    def _query(
        date_start: DateLike | None,
        date_end: DateLike | None,
        page_size: int,
        **search: Any,
    ) -> SearchQuery:
        return SearchQuery.build(date_start, date_end, page_size=page_size, require_range=False, **search)

    def _search_run(
        self,
        settings: Settings,
        sources: list[PageSource],
        size: int,
        limit: int | None = None,
        raw: bool = False,
    ) -> SearchRun:
        self.last_search_stats = None
        return SearchRun(
            sources, settings, page_size=size, limit=limit, strict=self.strict, raw=raw, log=self.log
        )

    @staticmethod
    def _search_sources(settings: Settings, query: SearchQuery) -> list[PageSource]:
        """:return: ``(label, page request builder, start)`` for each window of ``query``."""
        sources: list[PageSource] = []
        for bounds in query.windows(settings.window):
            label = "window [{}, {})".format(*(format_datetime(b) if b else "-" for b in bounds))
            sources.append((label, partial(query.page_request, settings.base_url, bounds), bounds[0]))
        return sources

    @staticmethod
    def _listing_source(label: str, build: Any, settings: Settings, name: str, **kw: Any) -> list[PageSource]:
        return [(label, lambda page, size: build(settings.base_url, name, page=page, size=size, **kw), None)]

    def search_messages(
        self,
        date_start: DateLike | None,
        date_end: DateLike | None,
        *,
        filters: Filters = None,
        campaign_tracking_id: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        tagged: bool | None = None,
        limit: int | None = None,
        raw: bool = False,
        campaign_id: str | None = None,
    ) -> S:
        """
        Every message created in ``[date_start, date_end)`` that matches, each exactly once, lazily.

        The range is searched window by window; within a window page 0 is read first, then the
        other pages concurrently (at most ``max_concurrency`` in flight), yielded in page order.
        Page 0 of the coming windows is fetched ahead, so that ``max_concurrency`` requests stay
        in flight across window boundaries (see :class:`~airflow_voicetrack.protocol.SearchRun`).
        Arguments are validated when this is called, before any request.

        Either bound may be ``None``: the range is then open on that side, the parameter
        (``from``/``to``) is not sent, and the search is not split into windows (it is
        read as one window), e.g. ``search_messages(None, None, campaign_tracking_id="...")``. Routee's
        documentation does not say whether the real API accepts a search without both bounds (the
        emulator does); :class:`~airflow_voicetrack.operators.voicetrack.VoiceTrackingOperator`
        therefore keeps requiring both. Pass ``None`` explicitly: no bound is the whole account.

        The async hook returns an async generator (``async for``): its arguments are checked when
        this is called, its connection when iteration starts, before any request either way. When
        stopping early without a ``limit``, close it (``contextlib.aclosing``) so that pages read
        ahead are cancelled.

        :param date_start: aware datetime, pendulum DateTime or ISO-8601 string (inclusive), or
            ``None`` for no lower bound.
        :param date_end: same (exclusive), or ``None`` for no upper bound; must be after
            ``date_start`` when both are set.
        :param filters: dicts ``{"fieldName", "searchOperator", "searchTerm"}`` or :class:`SearchFilter`.
        :param campaign_tracking_id: only messages of the campaign with this tracking id (sent as
            ``trackingId``): the id Routee returns when the campaign is created and shows in its
            console, not the campaign *name* that messages carry in ``campaign`` (to match a name,
            filter on ``{"fieldName": "campaign", "searchTerm": name}``).
        :param sort: ``field,asc|desc``, passed to the API; default: the API's own order.
        :param page_size: messages per page (default: the hook's).
        :param tagged: the API's boolean filter; sent only when set.
        :param limit: stop after this many messages (``None``: all). No page is requested beyond
            what the limit can need: with ``limit <= page_size`` exactly one page request is made
            (per window read; one window when the range is open or shorter than the window), and
            ``limit=0`` makes none. A search stopped by its limit skips the ``totalElements`` check.
        :param raw: yield :class:`~airflow_voicetrack.protocol.RawMessage` objects (each message's
            bytes as the API sent them, its id and status) instead of dicts: what the operator
            writes to JSON Lines without decoding and re-encoding every message.
        :param campaign_id: deprecated name of ``campaign_tracking_id`` (a ``DeprecationWarning``;
            removed in the next minor version).
        :raises VoiceTrackDateFilterError: while iterating, when a message is dated before its
            window's start: the service ignored the date range (see
            :class:`~airflow_voicetrack.protocol.WindowStartCheck`).
        """
        search = {
            "filters": filters,
            "campaign_tracking_id": resolve_campaign_tracking_id(campaign_tracking_id, campaign_id),
            "sort": sort,
            "tagged": tagged,
        }
        query = self._query(date_start, date_end, 1 if page_size is None else page_size, **search)
        return self._search(query, page_size, validate_limit(limit), raw)

    def _search(self, query: SearchQuery, page_size: int | None, limit: int | None, raw: bool) -> S:
        """Run ``query`` (its page size from the connection when ``page_size`` is None)."""
        raise NotImplementedError

    def _search_done(self, run: SearchRun) -> None:
        self.last_search_stats = run.stats.as_dict()
        self.log.info("voice tracking search done: %s", self.last_search_stats)


# ------------------------------------------------------------------------------------------------
# The methods both hooks offer, as flows; each hook runs them with its own driver.


def _count_messages(
    hook: _VoiceTrackHookBase[Any],
    settings: Settings,
    date_start: DateLike | None = None,
    date_end: DateLike | None = None,
    *,
    filters: Filters = None,
    campaign_tracking_id: str | None = None,
    tagged: bool | None = None,
    campaign_id: str | None = None,
) -> Flow[int]:
    """
    Return the API's ``totalElements`` for the search, with one request (a page of one).

    The arguments are those of ``search_messages``; ``campaign_id`` is the deprecated name of
    ``campaign_tracking_id``.

    :raises VoiceTrackDateFilterError: when the one message read is dated before ``date_start``.
    """
    tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id, stacklevel=4)
    query = hook._query(
        date_start, date_end, 1, filters=filters, campaign_tracking_id=tracking_id, tagged=tagged
    )
    return count_flow(settings, query, hook.log)


def _get_message(hook: _VoiceTrackHookBase[Any], settings: Settings, message_id: str) -> Flow[dict[str, Any]]:
    """
    Return one voice message.

    :raises VoiceTrackNotFoundError: when the API does not know it.
    """
    request = build_message_request(settings.base_url, message_id)
    return request_flow(settings, request, parse_message, hook.log)


def _get_messages(
    hook: _VoiceTrackHookBase[Any],
    settings: Settings,
    message_ids: Iterable[str],
    *,
    missing_ok: bool = False,
) -> Flow[dict[str, dict[str, Any] | None]]:
    """
    Fetch several messages concurrently (at most ``max_concurrency`` at once).

    :param missing_ok: map unknown ids to ``None`` instead of raising :class:`VoiceTrackNotFoundError`.
    :return: ``{message_id: message or None}`` in the order of ``message_ids``, duplicates once.
    """
    return messages_flow(settings, message_ids, missing_ok=missing_ok, log=hook.log)


def _public(factory: Callable[..., Any], method: Callable[..., Any]) -> None:
    """Give ``method`` the name, documentation and signature of ``factory`` without its first two."""
    functools.update_wrapper(method, factory)
    del method.__wrapped__  # type: ignore[attr-defined]
    signature = inspect.signature(factory)
    params = list(signature.parameters.values())
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[params[0].replace(name="self"), *params[2:]], return_annotation=inspect.Signature.empty
    )


def _sync(factory: Callable[Concatenate[Any, Settings, P], Flow[T]]) -> Callable[Concatenate[Any, P], T]:
    """Turn a flow factory into a :class:`VoiceTrackHook` method that runs the flow."""

    def method(self: VoiceTrackHook, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run_flow(factory(self, self.settings, *args, **kwargs))

    _public(factory, method)
    return method


def _async(
    factory: Callable[Concatenate[Any, Settings, P], Flow[T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """Turn a flow factory into a :class:`VoiceTrackAsyncHook` coroutine method that runs the flow."""

    async def method(self: VoiceTrackAsyncHook, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run_flow(factory(self, await self.get_settings(), *args, **kwargs))

    _public(factory, method)
    return method


# ------------------------------------------------------------------------------------------------
# Sync


class _SyncDriver:
    """
    Runs protocol flows with a ``requests`` session and a thread pool.

    Holds the access token (thread-safe). ``requests`` drops the ``Authorization`` header when a
    redirect leads to another host.
    """

    def __init__(self, settings: Settings, hook: _VoiceTrackHookBase[Any]) -> None:
        self.settings = settings
        self.log = hook.log
        self.limits = hook._limits(settings)
        self.session = transport.new_session(settings, pool_size=settings.max_concurrency + 1)
        self._tokens = TokenCache()
        self._token_lock = threading.Lock()

    def run(self, flow: Flow[T]) -> T:
        """Perform each action ``flow`` yields until it returns; return its value."""
        reply: Any = None
        try:
            while True:
                reply = self._perform(flow.send(reply))
        except StopIteration as done:
            return done.value
        finally:
            flow.close()  # a flow stopped half-way gives its limiter slot back

    def _perform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return self._send(action)
        if isinstance(action, Sleep):
            return time.sleep(action.seconds)
        if isinstance(action, GetToken):
            return self.token(action.rejected)
        if isinstance(action, GetLimits):
            return self.limits
        with ThreadPoolExecutor(action.limit, thread_name_prefix="voicetrack") as pool:
            return list(pool.map(self.run, action.flows))

    def token(self, rejected: Token | None = None) -> Token:
        """Return a usable token, getting a new one unless another thread replaced ``rejected`` already."""
        with self._token_lock:
            token = self._tokens.usable(rejected, time.monotonic())
            if token is None:
                token = self._tokens.token = self.run(token_flow(self.settings, self.log))
                mask_secret(token.value)
            return token

    def search(self, run: SearchRun) -> Iterator[Any]:
        """Yield the messages of ``run``, its pages fetched from a pool of ``max_concurrency`` threads."""
        pending: dict[Future[Any], PageFetch] = {}
        finished: Iterable[Future[Any]] = ()
        if not run.done:  # the token first, alone: bad credentials cost one token request, not one per page
            self.token()
        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="voicetrack") as pool:
            try:
                while True:
                    fetches, messages = run.step((pending.pop(f), f.result()) for f in finished)
                    # Requests start before the messages are yielded: they run while the caller works.
                    pending.update((pool.submit(self.run, run.flow(fetch)), fetch) for fetch in fetches)
                    yield from messages
                    if run.done:
                        return
                    finished = wait(pending, return_when=FIRST_COMPLETED).done
            finally:
                for future in pending:
                    future.cancel()

    def _send(self, send: Send) -> Response | TransportFailure:
        return transport.send(self.session, send.request, _token(send), self.settings)

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


class VoiceTrackHook(_VoiceTrackHookBase[Iterator[Any]]):
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
    def _driver(self) -> _SyncDriver:
        return _SyncDriver(self.settings, self)

    def get_conn(self) -> requests.Session:
        """Return the ``requests`` session the hook sends with (configured from the connection)."""
        return self._driver.session

    def run_flow(self, flow: Flow[T]) -> T:
        """
        Run a protocol flow with this hook's session and token; return its value.

        :param flow: e.g. :func:`~airflow_voicetrack.status.poke_flow`.
        """
        return self._driver.run(flow)

    count_messages = _sync(_count_messages)
    get_message = _sync(_get_message)
    get_messages = _sync(_get_messages)

    def get_conversation(self, conversation_tracking_id: str) -> Iterator[dict[str, Any]]:
        """Return the dial parts (messages) of one conversation, lazily, each once."""
        settings = self.settings
        build_conversation_request(settings.base_url, conversation_tracking_id, page=0, size=1)  # validate
        sources = self._listing_source(
            f"conversation {conversation_tracking_id}",
            build_conversation_request,
            settings,
            conversation_tracking_id,
        )
        return self._collect(self._search_run(settings, sources, settings.page_size))

    def get_campaign_messages(
        self,
        campaign_tracking_id: str | None = None,
        *,
        sort: str | None = None,
        page_size: int | None = None,
        campaign_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """
        Return the messages of one campaign, lazily, each once.

        :param campaign_tracking_id: the campaign's tracking id, as Routee returns it when the
            campaign is created and shows it in its console (not the campaign *name* that messages
            carry in ``campaign``).
        :param sort: ``field,asc|desc``, passed to the API.
        :param page_size: messages per page (default: the hook's).
        :param campaign_id: deprecated name of ``campaign_tracking_id`` (a ``DeprecationWarning``).
        """
        tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id)
        if tracking_id is None:
            raise ValueError("get_campaign_messages needs campaign_tracking_id, the campaign's tracking id")
        settings = self.settings
        size = settings.page_size if page_size is None else page_size
        build_campaign_request(settings.base_url, tracking_id, page=0, size=size, sort=validate_sort(sort))
        sources = self._listing_source(
            f"campaign {tracking_id}", build_campaign_request, settings, tracking_id, sort=sort
        )
        return self._collect(self._search_run(settings, sources, size))

    def test_connection(self) -> tuple[bool, str]:
        """
        Get a token and run a one-item search over the last day, without retries.

        :return: ``(ok, message)``; the message says what failed and never holds a secret.
        """
        try:
            settings = replace(self.settings, max_retries=0)
        except ValueError as exc:
            return False, f"Invalid connection: {exc}"
        driver = _SyncDriver(settings, self)
        now = pendulum.now("UTC")
        try:
            driver.token()
            total = driver.run(
                count_flow(settings, SearchQuery.build(now.subtract(days=1), now, page_size=1))
            )
        except VoiceTrackError as exc:
            return False, _describe_failure(exc)
        finally:
            driver.close()
        return True, f"Connection works: got a token, and a search found {total} messages in the last day"

    def _search(
        self, query: SearchQuery, page_size: int | None, limit: int | None, raw: bool
    ) -> Iterator[Any]:
        settings = self.settings
        if page_size is None:
            query = replace(query, page_size=settings.page_size)
        run = self._search_run(settings, self._search_sources(settings, query), query.page_size, limit, raw)
        return self._collect(run)

    def _collect(self, run: SearchRun) -> Iterator[Any]:
        yield from self._driver.search(run)
        self._search_done(run)


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
    Registering the same value again below is then cheap, and also tells the supervisor. The
    masker's module is private to Airflow: without it, the value is only registered below.
    """
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:  # a later Airflow moved it: register without the warm-up
        pass
    else:
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

    async def get(
        self, settings: Settings, hook: _VoiceTrackHookBase[Any], rejected: Token | None = None
    ) -> Token:
        """
        Return a fresh token, fetched once for every hook waiting for it.

        :param rejected: a token the API refused; it is replaced unless another hook did already.
        """
        token = self.token
        if token is not None and token is not rejected and token.is_fresh(time.monotonic()):
            return token
        if self.fetch is None:
            self.fetch = asyncio.ensure_future(self._fetch(settings, hook))
            # Retrieved here too: every waiter may have been cancelled when it fails.
            self.fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(self.fetch)

    async def _fetch(self, settings: Settings, hook: _VoiceTrackHookBase[Any]) -> Token:
        try:
            driver = await asyncio.to_thread(_AsyncDriver, settings, hook)
            try:
                token = await driver.run(token_flow(settings, hook.log))
            finally:
                await driver.client.aclose()
            await _amask_secret(token.value)  # before any hook can use it
            self.token = token
            return token
        finally:
            self.fetch = None


class _AsyncDriver:
    """The async twin of :class:`_SyncDriver`: an ``httpx.AsyncClient`` and asyncio tasks."""

    def __init__(self, settings: Settings, hook: _VoiceTrackHookBase[Any]) -> None:
        self.settings = settings
        self.hook = hook
        self.log = hook.log
        # Not per event loop, unlike the token: the limit is the connection's in this process.
        self.limits = hook._limits(settings)
        # httpx drops the Authorization header when a redirect leads to another origin.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            verify=_ssl_context(settings.verify_ssl),
            limits=httpx.Limits(max_connections=settings.max_concurrency + 1),
            follow_redirects=True,
        )

    async def run(self, flow: Flow[T]) -> T:
        """Async :meth:`_SyncDriver.run`."""
        reply: Any = None
        try:
            while True:
                reply = await self._perform(flow.send(reply))
        except StopIteration as done:
            return done.value
        finally:
            flow.close()  # a flow cancelled half-way gives its limiter slot back

    async def _perform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return await self._send(action)
        if isinstance(action, Sleep):
            return await asyncio.sleep(action.seconds)
        if isinstance(action, GetToken):
            return await self.token(action.rejected)
        if isinstance(action, GetLimits):
            return self.limits
        return await self._gather(action)

    async def _gather(self, gather: Gather) -> list[Any]:
        slots = asyncio.Semaphore(gather.limit)

        async def run(flow: Flow[Any]) -> Any:
            async with slots:
                return await self.run(flow)

        tasks = [asyncio.ensure_future(run(flow)) for flow in gather.flows]
        try:
            return await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def token(self, rejected: Token | None = None) -> Token:
        """Async :meth:`_SyncDriver.token`, shared by the hooks of this connection and loop."""
        conn_id = getattr(self.hook, "voicetrack_conn_id", "")
        return await _SharedToken.of(conn_id, self.settings).get(self.settings, self.hook, rejected)

    async def search(self, run: SearchRun) -> AsyncGenerator[Any, None]:
        """Async :meth:`_SyncDriver.search`, with one task per page."""
        tasks: dict[asyncio.Future[Any], PageFetch] = {}
        done: Iterable[asyncio.Future[Any]] = ()
        if not run.done:  # as in _SyncDriver.search
            await self.token()
        try:
            while True:
                fetches, messages = run.step((tasks.pop(task), task.result()) for task in done)
                tasks.update((asyncio.ensure_future(self.run(run.flow(fetch))), fetch) for fetch in fetches)
                for message in messages:
                    yield message
                if run.done:
                    return
                done = (await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))[0]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, send: Send) -> Response | TransportFailure:
        try:
            # httpx's read timeout, like urllib3's, bounds each read: a trickled body needs a total.
            # anyio's own cancel scope (httpx runs on anyio): a task wrapped by asyncio.wait_for
            # could be left stuck in anyio's connect when the trigger is cancelled.
            with anyio.fail_after(self.settings.request_deadline):
                reply = await self.client.request(**send.request.arguments(_token(send)))
        except TimeoutError:
            return TransportFailure("deadline", transport.deadline_text(self.settings.request_deadline))
        except httpx.TransportError as exc:
            return TransportFailure(self._error_kind(exc), str(exc) or type(exc).__name__)
        return Response(reply.status_code, reply.headers, reply.content)

    @staticmethod
    def _error_kind(exc: httpx.TransportError) -> TransportErrorKind:
        if transport.is_tls_error(exc):
            return "tls"
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return "connect"
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        return "protocol"


class VoiceTrackAsyncHook(_VoiceTrackHookBase[AsyncGenerator[Any, None]]):
    """
    The async twin of :class:`VoiceTrackHook`, for triggers.

    The same arguments and behaviour, on ``httpx``, with async connection access. Call
    :meth:`close` when done.
    """

    def __init__(
        self, voicetrack_conn_id: str = _VoiceTrackHookBase.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(voicetrack_conn_id, **kwargs)
        self._settings: Settings | None = None
        self._driver: _AsyncDriver | None = None
        # Concurrent first calls must share one client, and so one token.
        self._driver_lock = asyncio.Lock()

    async def get_settings(self) -> Settings:
        """The validated connection and arguments (read from the connection once)."""
        if self._settings is None:
            conn = await _aget_connection(self.voicetrack_conn_id)
            self._settings = self._settings_from(conn, await _aextra(conn))
        return self._settings

    async def _get_driver(self) -> _AsyncDriver:
        async with self._driver_lock:
            if self._driver is None:
                settings = await self.get_settings()
                # Building the client loads the CA bundle from disk: keep that off the event loop.
                self._driver = await asyncio.to_thread(_AsyncDriver, settings, self)
            return self._driver

    async def get_conn(self) -> httpx.AsyncClient:
        """Return the ``httpx`` client the hook sends with (configured from the connection)."""
        return (await self._get_driver()).client

    async def run_flow(self, flow: Flow[T]) -> T:
        """Async :meth:`VoiceTrackHook.run_flow`."""
        return await (await self._get_driver()).run(flow)

    async def paused_for(self) -> float:
        """The seconds the connection's requests in this process must still wait for a rate limit."""
        return (await self._get_driver()).limits.limiter.paused_for(time.monotonic())

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._driver is not None:
            await self._driver.client.aclose()
            self._driver = None

    count_messages = _async(_count_messages)
    get_message = _async(_get_message)
    get_messages = _async(_get_messages)

    async def _search(
        self, query: SearchQuery, page_size: int | None, limit: int | None, raw: bool
    ) -> AsyncGenerator[Any, None]:
        settings = await self.get_settings()
        if page_size is None:
            query = replace(query, page_size=settings.page_size)
        run = self._search_run(settings, self._search_sources(settings, query), query.page_size, limit, raw)
        driver = await self._get_driver()
        messages = driver.search(run)
        try:
            async for message in messages:
                yield message
        finally:
            await messages.aclose()
        self._search_done(run)


async def _aextra(conn: Any) -> dict[str, Any]:
    """The connection's extras, read without a blocking call where Airflow offers one."""
    aextra = getattr(conn, "aextra_dejson", None)
    return await aextra() if aextra is not None else conn.extra_dejson
