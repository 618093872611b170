"""
Hooks for Routee's voice tracking API: :class:`VoiceTrackHook` (sync) and :class:`VoiceTrackAsyncHook`.

Twins, with the same methods. Each method validates its arguments, builds its search run or flow
with :mod:`airflow_voicetrack.protocol.reads` and hands it to the hook's driver
(:mod:`airflow_voicetrack.drivers`): the sync one sends with ``requests`` from a thread pool, the
async one with ``httpx`` from asyncio tasks. Connection: ``login`` = application id, ``password`` =
application secret, ``host`` = API base URL, extras as declared in the provider info (see
:class:`~airflow_voicetrack.protocol.Settings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

import httpx
import requests
from airflow.sdk import BaseHook

from airflow_voicetrack.drivers.asyncio import AsyncDriver
from airflow_voicetrack.drivers.sync import SyncDriver
from airflow_voicetrack.exceptions import VoiceTrackError, describe_failure
from airflow_voicetrack.hooks.connection import aget_connection, connection_settings
from airflow_voicetrack.protocol import (
    Flow,
    Limiter,
    Limits,
    RetryBudget,
    SearchFilter,
    SearchRun,
    Settings,
    campaign_run,
    connection_check_flow,
    connection_key,
    conversation_run,
    count_flow,
    message_flow,
    messages_flow,
    required_campaign,
    search_query,
    search_run,
    validate_limit,
)

T = TypeVar("T")
Filters = Iterable[Mapping[str, Any] | SearchFilter] | None
DateLike = datetime | str


class _VoiceTrackHookBase(BaseHook):
    """What both hooks share: their arguments, the connection's limiter, the last search's stats."""

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

    def _search_done(self, run: SearchRun) -> None:
        self.last_search_stats = run.stats.as_dict()
        self.log.info("voice tracking search done: %s", self.last_search_stats)


class VoiceTrackHook(_VoiceTrackHookBase):
    """
    Read voice messages from Routee's voice tracking API.

    :param voicetrack_conn_id: the Airflow connection (type ``voicetrack``).
    :param page_size: messages per page, 1 to 2000; overrides the ``page_size`` extra (default 2000).
    :param max_concurrency: the most pages (or messages) in flight (the limiter adapts below it);
        overrides ``max_concurrency`` (8).
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
        return connection_settings(
            self.voicetrack_conn_id, conn, conn.extra_dejson, self._overrides, self.log
        )

    @cached_property
    def _driver(self) -> SyncDriver:
        return SyncDriver(self.settings, self.log, self._limits(self.settings))

    def get_conn(self) -> requests.Session:
        """Return the ``requests`` session the hook sends with (configured from the connection)."""
        return self._driver.session

    def paused_for(self) -> float:
        """The seconds the connection's requests in this process must still wait for a rate limit."""
        return self._limits(self.settings).limiter.paused_for(time.monotonic())

    def run_flow(self, flow: Flow[T]) -> T:
        """
        Run a protocol flow with this hook's session and token; return its value.

        :param flow: e.g. :func:`~airflow_voicetrack.waiting.poke_flow`.
        """
        return self._driver.run(flow)

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
    ) -> Iterator[Any]:
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
        query = search_query(
            date_start,
            date_end,
            filters=filters,
            campaign_tracking_id=campaign_tracking_id,
            sort=sort,
            page_size=page_size,
            tagged=tagged,
            campaign_id=campaign_id,
        )
        run = search_run(
            self.settings,
            query,
            page_size=page_size,
            limit=validate_limit(limit),
            raw=raw,
            strict=self.strict,
            log=self.log,
        )
        return self._collect(run)

    def count_messages(
        self,
        date_start: DateLike | None = None,
        date_end: DateLike | None = None,
        *,
        filters: Filters = None,
        campaign_tracking_id: str | None = None,
        tagged: bool | None = None,
        campaign_id: str | None = None,
    ) -> int:
        """
        Return the API's ``totalElements`` for the search, with one request (a page of one).

        The arguments are those of :meth:`search_messages`.

        :raises VoiceTrackDateFilterError: when the one message read is dated before ``date_start``.
        """
        query = search_query(
            date_start,
            date_end,
            filters=filters,
            campaign_tracking_id=campaign_tracking_id,
            tagged=tagged,
            campaign_id=campaign_id,
        )
        return self.run_flow(count_flow(self.settings, query, self.log))

    def get_message(self, message_id: str) -> dict[str, Any]:
        """
        Return one voice message.

        :raises VoiceTrackNotFoundError: when the API does not know it.
        """
        return self.run_flow(message_flow(self.settings, message_id, self.log))

    def get_messages(
        self, message_ids: Iterable[str], *, missing_ok: bool = False
    ) -> dict[str, dict[str, Any] | None]:
        """
        Fetch several messages concurrently (at most ``max_concurrency`` at once).

        :param missing_ok: map unknown ids to ``None`` instead of raising :class:`VoiceTrackNotFoundError`.
        :return: ``{message_id: message or None}`` in the order of ``message_ids``, duplicates once.
        """
        return self.run_flow(messages_flow(self.settings, message_ids, missing_ok=missing_ok, log=self.log))

    def get_conversation(self, conversation_tracking_id: str) -> Iterator[dict[str, Any]]:
        """Return the dial parts (messages) of one conversation, lazily, each once."""
        return self._collect(
            conversation_run(self.settings, conversation_tracking_id, strict=self.strict, log=self.log)
        )

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
        tracking_id = required_campaign(campaign_tracking_id, campaign_id)
        run = campaign_run(
            self.settings, tracking_id, sort=sort, page_size=page_size, strict=self.strict, log=self.log
        )
        return self._collect(run)

    def test_connection(self) -> tuple[bool, str]:
        """
        Get a token and run a one-item search over the last day, without retries.

        :return: ``(ok, message)``; the message says what failed and never holds a secret.
        """
        try:
            settings = replace(self.settings, max_retries=0)
        except ValueError as exc:
            return False, f"Invalid connection: {exc}"
        driver = SyncDriver(settings, self.log, self._limits(settings))
        try:
            total = driver.run(connection_check_flow(settings))
        except VoiceTrackError as exc:
            return False, describe_failure(exc)
        finally:
            driver.close()
        return True, f"Connection works: got a token, and a search found {total} messages in the last day"

    def _collect(self, run: SearchRun) -> Iterator[Any]:
        self.last_search_stats = None  # when the search is called, before its first message
        return self._read(run)

    def _read(self, run: SearchRun) -> Iterator[Any]:
        yield from self._driver.search(run)
        self._search_done(run)


class VoiceTrackAsyncHook(_VoiceTrackHookBase):
    """
    The async twin of :class:`VoiceTrackHook`, for triggers.

    The same arguments, methods and behaviour, on ``httpx``, with async connection access. The
    searches return async generators (``async for``): their arguments are checked when called, the
    connection when iteration starts, before any request either way. When stopping early without a
    ``limit``, close them (``contextlib.aclosing``) so that pages read ahead are cancelled. Call
    :meth:`close` when done.
    """

    def __init__(
        self, voicetrack_conn_id: str = _VoiceTrackHookBase.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(voicetrack_conn_id, **kwargs)
        self._settings: Settings | None = None
        self._driver: AsyncDriver | None = None
        # Concurrent first calls must share one client, and so one token.
        self._driver_lock = asyncio.Lock()

    async def get_settings(self) -> Settings:
        """The validated connection and arguments (read from the connection once)."""
        if self._settings is None:
            conn, extra = await aget_connection(self.voicetrack_conn_id)
            self._settings = connection_settings(
                self.voicetrack_conn_id, conn, extra, self._overrides, self.log
            )
        return self._settings

    async def _get_driver(self) -> AsyncDriver:
        async with self._driver_lock:
            if self._driver is None:
                settings = await self.get_settings()
                # Building the client loads the CA bundle from disk: keep that off the event loop.
                limits = self._limits(settings)
                self._driver = await asyncio.to_thread(
                    AsyncDriver, settings, self.log, self.voicetrack_conn_id, limits
                )
            return self._driver

    async def get_conn(self) -> httpx.AsyncClient:
        """Return the ``httpx`` client the hook sends with (configured from the connection)."""
        return (await self._get_driver()).client

    async def run_flow(self, flow: Flow[T]) -> T:
        """Async :meth:`VoiceTrackHook.run_flow`."""
        return await (await self._get_driver()).run(flow)

    async def paused_for(self) -> float:
        """Async :meth:`VoiceTrackHook.paused_for`."""
        return self._limits(await self.get_settings()).limiter.paused_for(time.monotonic())

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._driver is not None:
            await self._driver.close()
            self._driver = None

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
    ) -> AsyncGenerator[Any, None]:
        """Async :meth:`VoiceTrackHook.search_messages`: an async generator."""
        query = search_query(
            date_start,
            date_end,
            filters=filters,
            campaign_tracking_id=campaign_tracking_id,
            sort=sort,
            page_size=page_size,
            tagged=tagged,
            campaign_id=campaign_id,
        )
        limit = validate_limit(limit)

        async def start() -> SearchRun:
            settings = await self.get_settings()
            return search_run(
                settings, query, page_size=page_size, limit=limit, raw=raw, strict=self.strict, log=self.log
            )

        return self._collect(start)

    async def count_messages(
        self,
        date_start: DateLike | None = None,
        date_end: DateLike | None = None,
        *,
        filters: Filters = None,
        campaign_tracking_id: str | None = None,
        tagged: bool | None = None,
        campaign_id: str | None = None,
    ) -> int:
        """Async :meth:`VoiceTrackHook.count_messages`."""
        query = search_query(
            date_start,
            date_end,
            filters=filters,
            campaign_tracking_id=campaign_tracking_id,
            tagged=tagged,
            campaign_id=campaign_id,
        )
        return await self.run_flow(count_flow(await self.get_settings(), query, self.log))

    async def get_message(self, message_id: str) -> dict[str, Any]:
        """Async :meth:`VoiceTrackHook.get_message`."""
        return await self.run_flow(message_flow(await self.get_settings(), message_id, self.log))

    async def get_messages(
        self, message_ids: Iterable[str], *, missing_ok: bool = False
    ) -> dict[str, dict[str, Any] | None]:
        """Async :meth:`VoiceTrackHook.get_messages`."""
        settings = await self.get_settings()
        return await self.run_flow(messages_flow(settings, message_ids, missing_ok=missing_ok, log=self.log))

    def get_conversation(self, conversation_tracking_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """Async :meth:`VoiceTrackHook.get_conversation`: an async generator."""

        async def start() -> SearchRun:
            settings = await self.get_settings()
            return conversation_run(settings, conversation_tracking_id, strict=self.strict, log=self.log)

        return self._collect(start)

    def get_campaign_messages(
        self,
        campaign_tracking_id: str | None = None,
        *,
        sort: str | None = None,
        page_size: int | None = None,
        campaign_id: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Async :meth:`VoiceTrackHook.get_campaign_messages`: an async generator."""
        tracking_id = required_campaign(campaign_tracking_id, campaign_id)

        async def start() -> SearchRun:
            settings = await self.get_settings()
            return campaign_run(
                settings, tracking_id, sort=sort, page_size=page_size, strict=self.strict, log=self.log
            )

        return self._collect(start)

    async def test_connection(self) -> tuple[bool, str]:
        """Async :meth:`VoiceTrackHook.test_connection`."""
        try:
            settings = replace(await self.get_settings(), max_retries=0)
        except ValueError as exc:
            return False, f"Invalid connection: {exc}"
        limits = self._limits(settings)
        driver = await asyncio.to_thread(AsyncDriver, settings, self.log, self.voicetrack_conn_id, limits)
        try:
            total = await driver.run(connection_check_flow(settings))
        except VoiceTrackError as exc:
            return False, describe_failure(exc)
        finally:
            await driver.close()
        return True, f"Connection works: got a token, and a search found {total} messages in the last day"

    async def _collect(self, start: Callable[[], Awaitable[SearchRun]]) -> AsyncGenerator[Any, None]:
        run = await start()
        self.last_search_stats = None
        messages = (await self._get_driver()).search(run)
        try:
            async for message in messages:
                yield message
        finally:
            await messages.aclose()
        self._search_done(run)
