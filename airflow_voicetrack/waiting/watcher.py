"""
The event watcher's protocol: whether creation windows, or a campaign, have settled, and its progress.

:func:`poll_flow` is one poll of :class:`~airflow_voicetrack.triggers.voicetrack.VoiceTrackEventTrigger`;
:class:`Progress` is what a watcher announced so far, kept under :func:`state_key` in its asset's
state store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pendulum

from airflow_voicetrack.protocol import (
    Flow,
    SearchQuery,
    Settings,
    count_flow,
    format_datetime,
)
from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.waiting.criteria import StatusCriteria, evaluate_counts
from airflow_voicetrack.waiting.queries import pending_query, status_query

#: ``VoiceTrackEventTrigger`` modes: announce each settled creation window, or a finished campaign.
WINDOWS_SETTLED = "windows_settled"
CAMPAIGN_FINISHED = "campaign_finished"
EVENT_MODES = (WINDOWS_SETTLED, CAMPAIGN_FINISHED)
#: Settled windows one poll checks at most, so a watcher started far in the past catches up over
#: several polls instead of one burst of requests.
MAX_WINDOWS_PER_POLL = 24


def duration_seconds(value: float | timedelta, name: str, *, minimum: float) -> float:
    """Read a duration given in seconds or as a ``timedelta``; refuse one below ``minimum``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= minimum:
        raise ValueError(
            f"{name} must be a number of seconds (or a timedelta) of at least {minimum}, got {value!r}."
        )
    return float(seconds)


@dataclass
class Progress:
    """
    What one watcher announced so far (its asset's state, or memory without a state store).

    :param watermark: windows mode: the start of the next window to announce.
    :param finished: campaign mode: the campaign was announced.
    """

    watermark: pendulum.DateTime | None = None
    finished: bool = False


def window_floor(moment: datetime, window: int) -> pendulum.DateTime:
    """The start of the window of ``window`` seconds (on the grid since the epoch) that holds ``moment``."""
    seconds = int(moment.timestamp()) // window * window
    return pendulum.from_timestamp(seconds, tz="UTC")


def state_key(mode: str, search: Mapping[str, Any]) -> str:
    """
    A watcher's key in its asset's state store: a digest of its search.

    :param search: every argument of the watcher but ``asset_name``; its cadence and ``start`` are
        left out, so that changing them keeps the progress.
    """
    identity = {
        name: value
        for name, value in search.items()
        if name not in ("start", "lateness", "poll_interval", "announce_empty")
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"voicetrack.{mode}.{digest}"


def window_event(campaign_tracking_id: str | None, window: Mapping[str, Any]) -> dict[str, Any]:
    """The payload announcing a settled window (one of :func:`settled_windows_flow`'s)."""
    return {
        "mode": WINDOWS_SETTLED,
        **window,
        "campaign_tracking_id": campaign_tracking_id,
        "watermark": window["window_end"],
    }


def campaign_event(campaign_tracking_id: str | None, observation: Mapping[str, Any]) -> dict[str, Any]:
    """The payload announcing a finished campaign (from :func:`poll_flow`'s observation)."""
    return {
        "mode": CAMPAIGN_FINISHED,
        "campaign_tracking_id": campaign_tracking_id,
        **observation["finished"],
        "observed_at": observation["observed_at"],
    }


class ProgressStore:
    """
    Where a watcher keeps its :class:`Progress`: its asset's state store (Airflow 3.3+), else memory.

    Without a store (or with an ``asset_name`` that is not the watched asset's) progress lives in
    memory, which is warned about once; a store that cannot be read is retried, one that cannot be
    written is warned about (a restart may then announce again).

    :param owner: the trigger, whose ``asset_state_store`` Airflow sets in a triggerer.
    :param asset_name: the asset the watcher is attached to.
    :param key: the watcher's key in the store (see :func:`state_key`).
    :param log: the trigger's logger.
    :param retry_every: seconds between two attempts to read the store.
    """

    def __init__(self, owner: object, asset_name: str, key: str, log: Log, *, retry_every: float) -> None:
        self.owner = owner
        self.asset_name = asset_name
        self.key = key
        self.log = log
        self.retry_every = retry_every
        self._warned: set[str] = set()

    async def load(self) -> Any:
        """:return: the saved value, ``None`` when there is none (or no store); retried until read."""
        while True:
            try:
                accessor = self._accessor()
                return None if accessor is None else await store_call(accessor, "get", self.key)
            except Exception as err:
                self.log.warning(
                    "Cannot read the asset state store (%s); retrying in %.0f s", err, self.retry_every
                )
                await asyncio.sleep(self.retry_every)

    async def save(self, value: str | bool) -> None:
        """Save ``value``; a failure is logged, never raised."""
        accessor = self._accessor()
        if accessor is None:
            return
        try:
            await store_call(accessor, "set", self.key, value)
        except Exception as err:
            self.log.warning(
                "Cannot save the watcher's progress (%s): a triggerer restart may announce it again", err
            )

    def _accessor(self) -> Any:
        """The watched asset's state store, or ``None`` (in-memory progress, warned once)."""
        store = getattr(self.owner, "asset_state_store", None)
        if store is None:
            self._warn_once(
                "No asset state store (it needs Airflow 3.3+ and a watched asset): the watcher keeps "
                "its progress in memory, so a triggerer restart announces again what it announced."
            )
            return None
        from airflow.sdk import Asset

        try:
            return store[Asset(name=self.asset_name)]
        except KeyError:
            self._warn_once(
                "asset_name=%r is not the asset this watcher is attached to: set it to that Asset's "
                "name. Until then the watcher keeps its progress in memory.",
                self.asset_name,
            )
            return None

    def _warn_once(self, message: str, *args: Any) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.log.warning(message, *args)


async def store_call(accessor: Any, name: str, *args: Any) -> Any:
    """Call the state store's async method, or its blocking one in a thread (Airflow 3.3.0/3.3.1)."""
    method = getattr(accessor, f"a{name}", None)
    if method is not None:
        return await method(*args)
    return await asyncio.to_thread(getattr(accessor, name), *args)


def poll_flow(
    settings: Settings,
    criteria: StatusCriteria,
    target: SearchQuery,
    *,
    mode: str,
    now: datetime,
    cursor: datetime | None,
    lateness: timedelta,
    window: timedelta,
    log: Log,
) -> Flow[dict[str, Any] | None]:
    """
    One poll of a watcher: the campaign's verdict, or the settled windows from ``cursor`` on.

    :param cursor: windows mode: the oldest watermark of the watchers this poll serves.
    :return: a flow whose value is ``{"finished": counts, "observed_at": ...}`` for a finished
        campaign, ``{"windows": [...]}`` for settled windows (see :func:`settled_windows_flow`), or
        ``None`` when there is nothing to announce.
    """
    if mode == CAMPAIGN_FINISHED:
        counts = yield from settled_flow(settings, criteria, target, log=log)
        if not counts or not counts["count"]:
            log.info("Campaign %s: not finished (or no call yet)", target.campaign_tracking_id)
            return None
        log.info("Campaign %s finished: %s", target.campaign_tracking_id, counts)
        return {"finished": counts, "observed_at": format_datetime(now)}
    assert cursor is not None  # a windows watcher always has a watermark
    windows = yield from settled_windows_flow(
        settings,
        criteria,
        target,
        cursor=cursor,
        until=now - lateness,
        window=window,
        limit=MAX_WINDOWS_PER_POLL,
        log=log,
    )
    return {"windows": windows} if windows else None


def settled_flow(
    settings: Settings, criteria: StatusCriteria, target: SearchQuery, log: Log | None = None
) -> Flow[dict[str, Any] | None]:
    """
    Whether none of the target's messages is pending any more, and then its counts.

    Requests: one (the pending count) while a message is pending; then one more (the total) when
    nothing matches, or that and one per terminal status.

    :return: ``None`` while a message is pending, else ``{"count": n, "by_status": {...}}`` with
        every terminal status.
    """
    pending = yield from count_flow(settings, pending_query(target, criteria.terminal_statuses), log)
    if pending:
        return None
    total = yield from count_flow(settings, target, log)
    counts = {}
    for status in sorted(criteria.terminal_statuses) if total else ():
        counts[status] = yield from count_flow(settings, status_query(target, status), log)
    summary = evaluate_counts(criteria, pending=0, counts=counts).summary
    return {"count": summary["total"], "by_status": summary["by_status"]}


def settled_windows_flow(
    settings: Settings,
    criteria: StatusCriteria,
    target: SearchQuery,
    *,
    cursor: datetime,
    until: datetime,
    window: timedelta,
    limit: int,
    log: Log | None = None,
) -> Flow[list[dict[str, Any]]]:
    """
    Check the creation windows ``[cursor, cursor + window)``, ``[cursor + window, ...)`` in order.

    A window qualifies once it ended by ``until`` and none of its messages is pending (see
    :func:`settled_flow` for its requests); the flow stops at the first that does not, since
    windows are announced in order: a later settled window waits for an earlier one.

    :param target: the search without a date range (filters, campaign, tagged).
    :param limit: check at most this many settled windows (a catch-up spreads over several polls).
    :return: for each settled window, oldest first: ``window_start``, ``window_end`` (API format),
        ``count`` and ``by_status``.
    """
    settled: list[dict[str, Any]] = []
    start = cursor
    while len(settled) < limit and start + window <= until:
        end = start + window
        bounded = replace(target, date_start=pendulum.instance(start), date_end=pendulum.instance(end))
        counts = yield from settled_flow(settings, criteria, bounded, log)
        if counts is None:
            break
        settled.append({"window_start": format_datetime(start), "window_end": format_datetime(end), **counts})
        start = end
    return settled
