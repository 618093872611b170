"""
The interval an extraction reads: its rendered dates and filters, and what an empty interval means.

Airflow 3's default timetable for cron schedules, ``CronTriggerTimetable``, gives zero-width data
intervals, and runs without a logical date render none: ``empty_interval`` says what the operator
does with them (:data:`EMPTY_INTERVAL_POLICIES`), and :func:`data_interval` applies it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_voicetrack.protocol import format_datetime, normalize_filters, parse_datetime
from airflow_voicetrack.protocol.calls import Log

#: Accepted values of ``empty_interval``.
EMPTY_INTERVAL_POLICIES: tuple[str, ...] = ("fail", "skip", "lookback")

EMPTY_INTERVAL_HELP = (
    "Airflow 3 runs of CronTriggerTimetable (the default for cron strings and presets such as "
    "'@daily') have data_interval_start == data_interval_end, and runs triggered without a logical date "
    "have no data interval, so there is nothing to extract. Schedule the DAG with "
    "CronDataIntervalTimetable('0 0 * * *', timezone='UTC') or "
    "CronTriggerTimetable('0 0 * * *', timezone='UTC', interval=timedelta(days=1)), "
    "pass date_start and date_end, or set empty_interval='skip', or empty_interval='lookback' with "
    "lookback=timedelta(...)."
)


def check_empty_interval(empty_interval: str, lookback: timedelta | None) -> tuple[str, timedelta | None]:
    """
    Validate the operator's ``empty_interval`` and ``lookback`` arguments.

    :raises ValueError: naming the argument and what it accepts.
    """
    if empty_interval not in EMPTY_INTERVAL_POLICIES:
        raise ValueError(
            f"empty_interval must be one of {', '.join(map(repr, EMPTY_INTERVAL_POLICIES))}, "
            f"got {empty_interval!r}"
        )
    if empty_interval == "lookback":
        if not isinstance(lookback, timedelta) or lookback <= timedelta(0):
            raise ValueError(
                f"empty_interval='lookback' needs lookback, a positive timedelta, got lookback={lookback!r}"
            )
    elif lookback is not None:
        raise ValueError(f"lookback is used only with empty_interval='lookback', not {empty_interval!r}")
    return empty_interval, lookback


def data_interval(
    date_start: Any,
    date_end: Any,
    *,
    empty_interval: str,
    lookback: timedelta | None,
    run_after: Callable[[], Any],
    log: Log,
) -> tuple[pendulum.DateTime, pendulum.DateTime]:
    """
    Validate the rendered interval and apply ``empty_interval`` to a zero-width or missing one.

    :param date_start: the rendered ``date_start``.
    :param date_end: the rendered ``date_end``.
    :param run_after: returns the run's ``run_after``, the end of a lookback without ``date_end``.
    :raises AirflowFailException: for a reversed interval, or an empty one under ``"fail"``.
    :raises AirflowSkipException: for an empty interval under ``"skip"``.
    """
    start, end = rendered_moment(date_start, "date_start"), rendered_moment(date_end, "date_end")
    if start is not None and end is not None:
        if end > start:
            return start, end
        if end < start:
            raise AirflowFailException(
                f"date_end ({format_datetime(end)}) is before date_start ({format_datetime(start)})"
            )
    shown = f"date_start={date_start!r}, date_end={date_end!r}"
    if empty_interval == "skip":
        raise AirflowSkipException(f"Skipping: the data interval is empty ({shown}). {EMPTY_INTERVAL_HELP}")
    if empty_interval == "lookback":
        assert lookback is not None  # checked by check_empty_interval
        if end is None:
            end = rendered_moment(run_after(), "run_after")
            assert end is not None
        log.info("The data interval is empty (%s); looking back %s from %s", shown, lookback, end)
        return end - lookback, end
    raise AirflowFailException(f"The data interval is empty ({shown}). {EMPTY_INTERVAL_HELP}")


def rendered_moment(value: Any, name: str) -> pendulum.DateTime | None:
    """Parse a rendered date to the second; None when missing (``None`` or the text ``"None"``)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return parse_datetime(value, name).set(microsecond=0)


def rendered_filters(filters: Any) -> list[dict[str, str]]:
    """
    Validate rendered ``filters``: a list, or the JSON text of one (what a template renders to).

    :raises ValueError: for text that is not JSON, and as :func:`normalize_filters` does.
    """
    if isinstance(filters, str):
        try:
            filters = json.loads(filters) if filters.strip() else None
        except json.JSONDecodeError as err:
            raise ValueError(f"filters rendered to {filters!r}, which is not a JSON list: {err}") from None
    return normalize_filters(filters)
