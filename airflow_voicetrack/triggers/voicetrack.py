"""
Triggers on Routee's voice tracking API, run in the triggerer.

- :class:`VoiceMessageStatusTrigger`: a deferred sensor's wait until voice messages are terminal.
- :class:`VoiceTrackEventTrigger`: an Asset watcher that announces settled creation windows, or a
  finished campaign, so that a DAG scheduled on the Asset runs when calls finish.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import pendulum
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_voicetrack.exceptions import VoiceTrackTransientError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook
from airflow_voicetrack.protocol import SearchQuery, format_datetime, parse_datetime, search_query
from airflow_voicetrack.waiting import (
    CAMPAIGN_FINISHED,
    EVENT_MODES,
    WINDOWS_SETTLED,
    IdsTracker,
    Progress,
    ProgressStore,
    StatusCriteria,
    WaitEvent,
    campaign_event,
    decode_query,
    duration_seconds,
    encode_query,
    legacy_arguments,
    poke_flow,
    poll_flow,
    state_key,
    to_kwargs,
    window_event,
    window_floor,
)

if TYPE_CHECKING:
    from airflow_voicetrack.waiting import Evaluation

#: Consecutive transient errors (each after the hook's own retries) before giving up.
MAX_CONSECUTIVE_ERRORS = 3
#: Longest back-off between two attempts after transient errors, in seconds.
MAX_ERROR_BACKOFF = 300.0
#: Relative jitter applied to every sleep, so many waits do not poll in lockstep.
JITTER = 0.1


class VoiceMessageStatusTrigger(BaseTrigger):
    """
    Poll Routee's voice tracking API until the targeted messages are terminal, then fire one event.

    The trigger evaluates the statuses itself with :class:`~airflow_voicetrack.waiting` rules (the
    same as :class:`~airflow_voicetrack.sensors.voicetrack.VoiceMessageStatusSensor` in poke mode)
    and fires exactly one event:

    - ``{"status": "success", "summary": {...}}`` when every message is terminal;
    - ``{"status": "failure", "message": str, "summary": {...}}`` when failure statuses exceed the
      threshold, or an id is unknown and ``missing="fail"``;
    - ``{"status": "timeout", "message": str, "summary": {...}}`` when ``timeout_at`` passes;
    - ``{"status": "error", "message": str}`` on an error that waiting will not fix, or after
      :data:`MAX_CONSECUTIVE_ERRORS` transient errors in a row.

    Every event also carries ``timeout_at`` (ISO-8601) when it is set, so that the resumed task
    knows its deadline even where the deferral's own kwargs are lost (``dag.test()`` in Airflow 3.3
    drops them).

    It sleeps ``poke_interval`` (with jitter) between evaluations and backs off exponentially after
    transient errors, waiting at least the ``Retry-After`` the server sent with the last one (see
    :attr:`VoiceTrackTransientError.retry_after`), and never past ``timeout_at``. Arguments are
    the already validated values the sensor passes; they hold no secret (the connection is looked
    up by id, asynchronously, in the triggerer).

    :param voicetrack_conn_id: connection id.
    :param message_ids: ids to wait for (ids mode), or ``None`` for search mode.
    :param target: search mode: the validated search (a :class:`~airflow_voicetrack.protocol.SearchQuery`
        or its keyword arguments, see :func:`~airflow_voicetrack.waiting.encode_query`; as serialized
        before ``campaign_id`` became ``campaign_tracking_id`` too); ``None`` in ids mode.
    :param criteria: what done and failed mean (a :class:`StatusCriteria` or its keyword arguments).
    :param poke_interval: seconds between evaluations.
    :param timeout_at: when to stop waiting with a ``timeout`` event; ``None`` waits forever.
    :param first_check_after: seconds to sleep before the first evaluation (the operator has just
        counted on the worker, so checking again at once would cost a request for nothing).
    :param legacy: the flat arguments of earlier versions (``date_start``, ``date_end``,
        ``filters``, ``campaign_id``, ``tagged``, ``terminal_statuses``, ``failure_statuses``,
        ``failure_threshold``, ``missing``, ``wait_for_messages``, ``count_only``), so that triggers
        deferred before an upgrade still run.
    """

    def __init__(
        self,
        *,
        voicetrack_conn_id: str,
        message_ids: list[str] | None = None,
        target: SearchQuery | dict[str, Any] | None = None,
        criteria: StatusCriteria | dict[str, Any] | None = None,
        poke_interval: float,
        timeout_at: datetime | None,
        first_check_after: float = 0.0,
        **legacy: Any,
    ) -> None:
        super().__init__()
        if legacy:  # serialized by an earlier version: the target's and the criteria's fields, flat
            legacy_target, criteria = legacy_arguments(legacy)
            if message_ids is None:
                target = legacy_target
        self.voicetrack_conn_id = voicetrack_conn_id
        self.message_ids = message_ids
        self.target = decode_query(target) if isinstance(target, dict) else target
        self.criteria = (
            criteria if isinstance(criteria, StatusCriteria) else StatusCriteria.build(**(criteria or {}))
        )
        if (message_ids is None) == (self.target is None):
            raise ValueError("VoiceMessageStatusTrigger needs either message_ids or a target, not both")
        self.poke_interval = poke_interval
        self.timeout_at = timeout_at
        self.first_check_after = first_check_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor's keyword arguments, the dataclasses as dicts."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "voicetrack_conn_id": self.voicetrack_conn_id,
                "message_ids": self.message_ids,
                "target": None if self.target is None else encode_query(self.target),
                "criteria": to_kwargs(self.criteria),
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "first_check_after": self.first_check_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Evaluate until a final outcome, then yield its single event."""
        hook = VoiceTrackAsyncHook(self.voicetrack_conn_id)
        try:
            event = await self._wait(hook)
        finally:
            await hook.close()
        if self.timeout_at is not None:
            event = replace(event, timeout_at=self.timeout_at.isoformat())
        yield TriggerEvent(event.encode())

    async def _wait(self, hook: VoiceTrackAsyncHook) -> WaitEvent:
        tracker = IdsTracker(self.message_ids, self.criteria) if self.message_ids is not None else None
        errors = 0
        last_error: Exception | None = None
        if self.first_check_after > 0 and not await self._sleep(self.first_check_after):
            return self._timeout_event(None, "timed out before the first check")
        while True:
            # A rate limit pauses every request of the connection; a pause past the timeout would
            # hold this poke past it.
            if (
                self.timeout_at is not None
                and await hook.paused_for() >= self.timeout_at.timestamp() - time.time()
            ):
                detail = f"last attempt failed: {last_error}" if last_error else "paused for a rate limit"
                return self._timeout_event(None, detail)
            try:
                settings = await hook.get_settings()
                flow = poke_flow(settings, self.criteria, target=self.target, tracker=tracker, log=self.log)
                evaluation = await hook.run_flow(flow)
            except VoiceTrackTransientError as err:
                errors += 1
                last_error = err
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    return WaitEvent(
                        "error", f"{errors} transient errors in a row, last: {type(err).__name__}: {err}"
                    )
                delay = min(self.poke_interval * 2**errors, MAX_ERROR_BACKOFF)
                # The server's Retry-After (when the last failure carried one) is a floor.
                floor = err.retry_after or 0.0
                self.log.warning(
                    "Transient error (%s), retrying in about %.0f s: %s", errors, max(delay, floor), err
                )
                if not await self._sleep(delay, minimum=floor):
                    return self._timeout_event(None, f"last attempt failed: {err}")
                continue
            except Exception as err:
                return WaitEvent("error", f"{type(err).__name__}: {err}")
            errors = 0
            if evaluation.done:
                self.log.info("%s", evaluation.message)
                return WaitEvent("success", summary=evaluation.summary)
            if evaluation.failed:
                return WaitEvent("failure", evaluation.message, evaluation.summary)
            self.log.info("%s", evaluation.message)
            if not await self._sleep(self.poke_interval):
                return self._timeout_event(evaluation, evaluation.message)

    async def _sleep(self, seconds: float, *, minimum: float = 0.0) -> bool:
        """
        Sleep ``seconds`` with jitter; return False if ``timeout_at`` has passed.

        The sleep lasts at least ``minimum`` (e.g. a server's ``Retry-After``), never past ``timeout_at``.
        """
        delay = max(seconds * random.uniform(1 - JITTER, 1 + JITTER), minimum)
        if self.timeout_at is not None:
            remaining = self.timeout_at.timestamp() - time.time()
            if remaining <= 0:
                return False
            delay = min(delay, remaining)
        await asyncio.sleep(delay)
        return True

    def _timeout_event(self, evaluation: Evaluation | None, detail: str) -> WaitEvent:
        message = f"Timed out at {self.timeout_at} waiting for voice messages: {detail}"
        return WaitEvent("timeout", message, evaluation.summary if evaluation is not None else None)


#: Seconds a shared poll waits for its first subscriber's cursor before it polls.
_CURSOR_WAIT = 0.05


class VoiceTrackEventTrigger(BaseEventTrigger):
    """
    Asset watcher: announce when voice calls have finished, so a DAG scheduled on the Asset runs.

    Two modes, each firing on an edge (the moment something becomes final), never on a level:

    - ``windows_settled``: every ``poll_interval`` it announces, oldest first, the next creation
      windows ``[start, end)`` of length ``window`` (on a grid of ``window`` since the Unix epoch)
      whose end is ``lateness`` in the past and none of whose calls (matching ``filters``,
      ``campaign_tracking_id`` and ``tagged``) is still pending; each window once, and windows
      without any call only with ``announce_empty``. Payload::

          {"mode": "windows_settled", "window_start": "2026-11-25T10:00:00Z",
           "window_end": "2026-11-25T11:00:00Z", "count": 412,
           "by_status": {"Completed": 300, "NoAnswer": 100, ...},
           "campaign_tracking_id": null, "watermark": "2026-11-25T11:00:00Z"}

      ``watermark`` is where the next window starts. The first window starts at ``start`` or, without
      it, at the window the watcher first ran in.
    - ``campaign_finished``: fires once when every message of ``campaign_tracking_id`` is final (and
      it has at least one), and never again for that campaign. Payload::

          {"mode": "campaign_finished", "campaign_tracking_id": "...", "count": 120,
           "by_status": {...}, "observed_at": "2026-11-25T10:07:31Z"}

    Delivery is at least once: progress is saved after an event is handed to Airflow, so a triggerer
    that dies in between announces that window (or campaign) again. Keep consumers idempotent.

    **State.** On Airflow 3.3+ the watermark and the announced campaign live in the watched asset's
    state store (they survive triggerer restarts); the keys hash the search, so watchers of different
    searches on one asset keep apart. On older Airflow they live in memory (a warning says so once):
    a restarted triggerer announces again from ``start`` (or skips to the current window without
    ``start``), and announces a finished campaign again.

    **Shared polls.** On Airflow 3.3+ watchers with the same search, connection and cadence (every
    argument but ``asset_name``) share one poll in a triggerer; each still keeps its own progress.
    Watchers of different searches share the connection's token, not the poll.

    **Failures.** A failed poll (after the hook's own retries within the connection's caps) is
    logged and tried again at the next poll, no sooner than a ``Retry-After`` the server sent. It
    never fires an event and never ends the watcher.

    :param asset_name: name of the Asset this watcher is attached to. It makes the trigger's row
        unique to the asset (Airflow shares one trigger row between watchers with equal arguments)
        and selects the asset's state store.
    :param mode: ``"windows_settled"`` (default) or ``"campaign_finished"``.
    :param voicetrack_conn_id: connection id.
    :param campaign_tracking_id: the campaign's tracking id; required for ``campaign_finished``,
        a filter for ``windows_settled``.
    :param filters: API search filters (AND-combined), as for ``VoiceTrackingOperator``.
    :param tagged: only calls with (``True``) or without (``False``) a campaign; ``None``: all.
    :param terminal_statuses: statuses that count as final (default: the six final ones and
        ``Unknown``).
    :param window: windows mode: window length, whole seconds or a ``timedelta`` (default 1 hour).
    :param start: windows mode: start of the first window (aware datetime or ISO-8601), on the
        window grid; default: the window the watcher first ran in.
    :param lateness: windows mode: seconds a window's end must lie in the past before it is
        checked, for calls the API shows late (default 0).
    :param announce_empty: windows mode: announce windows without any call too (default False).
    :param poll_interval: seconds between polls (default 60).
    """

    #: watchers' progress by shared-stream key, for the shared poll (one triggerer, one loop)
    _subscribers: ClassVar[dict[Hashable, dict[int, Progress]]] = {}

    def __init__(
        self,
        *,
        asset_name: str,
        mode: str = WINDOWS_SETTLED,
        voicetrack_conn_id: str = VoiceTrackAsyncHook.default_conn_name,
        campaign_tracking_id: str | None = None,
        filters: list[dict[str, Any]] | None = None,
        tagged: bool | None = None,
        terminal_statuses: list[str] | None = None,
        window: float | timedelta = 3600,
        start: str | datetime | None = None,
        lateness: float | timedelta = 0,
        announce_empty: bool = False,
        poll_interval: float | timedelta = 60,
    ) -> None:
        super().__init__()
        if not isinstance(asset_name, str) or not asset_name.strip():
            raise ValueError(
                f"asset_name must be the name of the Asset this watcher is attached to, got {asset_name!r}."
            )
        if mode not in EVENT_MODES:
            raise ValueError(f"mode must be one of {list(EVENT_MODES)}, got {mode!r}.")
        if mode == CAMPAIGN_FINISHED and campaign_tracking_id is None:
            raise ValueError("mode='campaign_finished' needs campaign_tracking_id, the campaign to watch.")
        if not isinstance(voicetrack_conn_id, str) or not voicetrack_conn_id:
            raise ValueError(f"voicetrack_conn_id must be a connection id, got {voicetrack_conn_id!r}.")
        if tagged is not None and not isinstance(tagged, bool):
            raise ValueError(f"tagged must be True, False or None, got {tagged!r}.")
        if not isinstance(announce_empty, bool):
            raise ValueError(f"announce_empty must be True or False, got {announce_empty!r}.")
        self.asset_name = asset_name
        self.mode = mode
        self.voicetrack_conn_id = voicetrack_conn_id
        self.target = search_query(filters=filters, campaign_tracking_id=campaign_tracking_id, tagged=tagged)
        self.campaign_tracking_id = self.target.campaign_tracking_id
        self.criteria = StatusCriteria.build(terminal_statuses=terminal_statuses)
        self.poll_interval = duration_seconds(poll_interval, "poll_interval", minimum=1)
        window_s = duration_seconds(window, "window", minimum=1)
        if window_s != int(window_s):
            raise ValueError(f"window must be whole seconds (the API's dates are), got {window!r}.")
        self.window = int(window_s)
        self.lateness = duration_seconds(lateness, "lateness", minimum=0)
        self.announce_empty = announce_empty
        self.start = None if start is None else parse_datetime(start, "start").set(microsecond=0)
        if mode == CAMPAIGN_FINISHED and (start is not None or announce_empty):
            raise ValueError("start and announce_empty apply to mode='windows_settled' only; remove them.")
        if self.start is not None and window_floor(self.start, self.window) != self.start:
            raise ValueError(
                f"start = {format_datetime(self.start)} is not on the grid of window={self.window} s "
                f"(multiples of the window since 1970-01-01T00:00:00Z); e.g. "
                f"{format_datetime(window_floor(self.start, self.window))}."
            )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the normalized constructor arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"asset_name": self.asset_name, **self._search_kwargs()},
        )

    def _search_kwargs(self) -> dict[str, Any]:
        """Every argument but ``asset_name``: what makes two watchers one search."""
        return {
            "mode": self.mode,
            "voicetrack_conn_id": self.voicetrack_conn_id,
            "campaign_tracking_id": self.campaign_tracking_id,
            "filters": self.target.filters,
            "tagged": self.target.tagged,
            "terminal_statuses": sorted(self.criteria.terminal_statuses),
            "window": self.window,
            "start": None if self.start is None else format_datetime(self.start),
            "lateness": self.lateness,
            "announce_empty": self.announce_empty,
            "poll_interval": self.poll_interval,
        }

    # -- shared polls (Airflow 3.3+) ---------------------------------------------------------

    def shared_stream_key(self) -> Hashable:
        """Watchers of the same search, connection and cadence share one poll."""
        return (type(self).__qualname__, json.dumps(self._search_kwargs(), sort_keys=True))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The one poll of a group: what it finds, for every watcher's :meth:`filter_shared_stream`."""
        poller = cls(**kwargs)
        key = poller.shared_stream_key()
        async for observation in poller._observe(lambda: list(cls._subscribers.get(key, {}).values())):
            yield observation

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's announcements from the group's poll, after its own progress."""
        progress = await self._load_progress()
        key = self.shared_stream_key()
        group = self._subscribers.setdefault(key, {})
        group[id(self)] = progress
        try:
            async for event in self._announce(shared_stream, progress):
                yield event
        finally:
            group.pop(id(self), None)
            if not group and self._subscribers.get(key) is group:
                del self._subscribers[key]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll alone (Airflow < 3.3, or outside a triggerer) and announce."""
        progress = await self._load_progress()
        async for event in self._announce(self._observe(lambda: [progress]), progress):
            yield event

    # -- polling -------------------------------------------------------------------------------

    async def _observe(self, progresses: Callable[[], list[Progress]]) -> AsyncIterator[dict[str, Any]]:
        """
        Poll every ``poll_interval`` for as long as someone listens; yield what each poll found.

        :param progresses: the progress of every watcher this poll serves, read at each poll.
        """
        hook = VoiceTrackAsyncHook(self.voicetrack_conn_id)
        try:
            while True:
                watching = progresses()
                if not watching or (self.mode == WINDOWS_SETTLED and not any(p.watermark for p in watching)):
                    await asyncio.sleep(_CURSOR_WAIT)  # a shared poll whose watchers are still loading
                    continue
                floor = 0.0
                try:
                    observation = await self._poll(hook, watching)
                except Exception as err:
                    # Never fatal: the hook already retried within the connection's caps; the
                    # next poll tries again, no sooner than the server asked.
                    floor = getattr(err, "retry_after", None) or 0.0
                    self.log.warning(
                        "Voice tracking poll failed (%s: %s); the watcher polls again in about %.0f s",
                        type(err).__name__,
                        err,
                        max(self.poll_interval, floor),
                    )
                else:
                    if observation is not None:
                        yield observation
                delay = self.poll_interval * random.uniform(1 - JITTER, 1 + JITTER)
                await asyncio.sleep(max(delay, floor))
        finally:
            await hook.close()

    async def _poll(self, hook: VoiceTrackAsyncHook, watching: list[Progress]) -> dict[str, Any] | None:
        """One poll: the settled windows from the oldest watermark, or the campaign's verdict."""
        if self.mode == CAMPAIGN_FINISHED and all(progress.finished for progress in watching):
            return None  # announced: no request any more
        flow = poll_flow(
            await hook.get_settings(),
            self.criteria,
            self.target,
            mode=self.mode,
            now=pendulum.now("UTC"),
            cursor=min((p.watermark for p in watching if p.watermark is not None), default=None),
            lateness=timedelta(seconds=self.lateness),
            window=timedelta(seconds=self.window),
            log=self.log,
        )
        return await hook.run_flow(flow)

    async def _announce(
        self, observations: AsyncIterator[dict[str, Any]], progress: Progress
    ) -> AsyncIterator[TriggerEvent]:
        """
        Turn observations into this watcher's events, each at most once per saved progress.

        Progress is saved after the event is handed over (the triggerer persists it later): a crash
        in between repeats the event rather than losing it.
        """
        async for observation in observations:
            if self.mode == CAMPAIGN_FINISHED:
                if progress.finished:
                    continue
                yield TriggerEvent(campaign_event(self.campaign_tracking_id, observation))
                progress.finished = True
                await self._store.save(True)
                continue
            for window in observation["windows"]:
                window_start = parse_datetime(window["window_start"], "window_start")
                if progress.watermark is None or window_start != progress.watermark:
                    continue  # announced already, or after a gap the next poll fills
                if window["count"] or self.announce_empty:
                    yield TriggerEvent(window_event(self.campaign_tracking_id, window))
                progress.watermark = parse_datetime(window["window_end"], "window_end")
                await self._store.save(window["window_end"])

    # -- state -----------------------------------------------------------------------------------

    @property
    def _state_key(self) -> str:
        """Its key in the asset state store (:func:`~airflow_voicetrack.waiting.watcher.state_key`)."""
        return state_key(self.mode, self._search_kwargs())

    @cached_property
    def _store(self) -> ProgressStore:
        return ProgressStore(self, self.asset_name, self._state_key, self.log, retry_every=self.poll_interval)

    async def _load_progress(self) -> Progress:
        """Read the saved progress; retry at each poll while the store cannot be read."""
        stored = await self._store.load()
        if self.mode == CAMPAIGN_FINISHED:
            if stored:
                self.log.info(
                    "Campaign %s was announced already; not polling it again", self.campaign_tracking_id
                )
            return Progress(finished=bool(stored))
        if isinstance(stored, str):
            return Progress(watermark=parse_datetime(stored, "watermark"))
        first = self.start or window_floor(pendulum.now("UTC"), self.window)
        if self.start is None:  # a restart must not move the first window
            await self._store.save(format_datetime(first))
        return Progress(watermark=first)
