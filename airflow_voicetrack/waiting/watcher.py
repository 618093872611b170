"""The event watcher's flows: whether creation windows, or a campaign, have settled."""

from __future__ import annotations

from dataclasses import replace
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
