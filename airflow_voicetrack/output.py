"""
Where the operator writes: the output's format, its file and asset names, and intervals to map over.

Which object an interval goes to (:func:`default_file_name`, :func:`final_path`), which Asset a
task declares (:func:`output_asset`), the error for a path that every run would overwrite
(:func:`fixed_path_message`, :func:`one_object_error`), the cap on what goes to XCom, and
:func:`split_interval` for dynamic task mapping.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import DAG, Asset, ObjectStoragePath
from airflow.sdk.definitions.timetables.simple import NullTimetable, OnceTimetable

from airflow_voicetrack.protocol import LimitStats, format_datetime, parse_range, split_windows
from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.writers import FORMATS, WriteResult, object_uri


def fixed_path_message(output_path: str | ObjectStoragePath, why: str) -> str:
    """The error for an ``output_path`` that names the same object in every run; it names the fixes."""
    return (
        f"output_path {str(output_path)!r} names one object with no interval in it, and {why}, so each "
        "run would silently replace the object another interval wrote. End output_path with '/' (one "
        "object per interval, named voicetrack_<start>_<end>.<format>), or put the interval in it, "
        "e.g. 's3://bucket/voicetrack/{{ data_interval_start | ds }}.jsonl'; or pass "
        "overwrite_each_run=True if one object that every run replaces is really what you want."
    )


def one_object_error(output_path: str | ObjectStoragePath, dag: DAG) -> str | None:
    """
    The error for an ``output_path`` that names one object when ``dag``'s runs would each replace it.

    :return: ``None`` when the DAG has no schedule (``None``, ``"@once"``): one run, one object.
    """
    timetable = dag.timetable
    if not getattr(timetable, "can_be_scheduled", True) or isinstance(
        timetable, (NullTimetable, OnceTimetable)
    ):
        return None
    return fixed_path_message(output_path, f"DAG {dag.dag_id!r} has a schedule")


def final_path(
    output_path: str | ObjectStoragePath,
    conn_id: str | None,
    start: datetime,
    end: datetime,
    output_format: str,
) -> ObjectStoragePath:
    """
    The object an extraction of ``[start, end)`` writes: ``output_path``, or a file in it (ending ``/``).

    :raises ValueError: for a relative path, or a scheme without a file system.
    """
    uri = output_path if isinstance(output_path, str) else None
    if uri is not None and "://" not in uri and not uri.startswith("/"):
        raise ValueError(
            f"output_path {uri!r} is a relative path, which would depend on the "
            "worker's working directory; use a URI such as 'file:///data/voicetrack/' or "
            "'s3://bucket/prefix/'"
        )
    try:
        path = ObjectStoragePath(output_path, conn_id=conn_id)
    except ValueError as err:  # fsspec: "Unsupported filesystem"/"Protocol not known"
        raise ValueError(
            f"output_path {output_path!r}: {err}; use a URI whose scheme has an fsspec "
            "file system, such as 'file:///data/voicetrack/' or 's3://bucket/prefix/' "
            "(s3 needs the [s3] extra)"
        ) from err
    # ObjectStoragePath drops a trailing "/", so only a URI string can name a directory.
    if isinstance(output_path, str) and output_path.endswith("/"):
        path = path / default_file_name(start, end, output_format)
    return path


def extraction_summary(
    result: WriteResult,
    path: ObjectStoragePath,
    output_format: str,
    start: datetime,
    end: datetime,
    *,
    seconds: float,
    search_stats: Mapping[str, Any],
    not_terminal: Mapping[str | None, int],
    waited_seconds: float,
    log: Log,
) -> dict[str, Any]:
    """
    The task's summary of what it wrote (its XCom value and its asset event's ``extra``), logged.

    :param seconds: how long the search and the write took.
    :param search_stats: the hook's ``last_search_stats``.
    :param not_terminal: the written messages whose status is not terminal, counted by status.
    :param waited_seconds: how long the task waited for the calls to finish first.
    """
    pages = search_stats.get("pages", 0)
    limits = {key: search_stats[key] for key in LimitStats().as_dict() if key in search_stats}
    non_terminal = sum(not_terminal.values())
    summary = {
        "path": None if result.path is None else object_uri(result.path),
        "conn_id": path.conn_id,
        "records": result.records,
        "bytes": result.bytes,
        "format": output_format,
        "date_start": format_datetime(start),
        "date_end": format_datetime(end),
        "pages": pages,
        "seconds": round(seconds, 3),
        "non_terminal": non_terminal,
        "waited_seconds": waited_seconds,
        "limits": limits,
    }
    log.info(
        "Extracted %d messages in %d pages, %d bytes to %s in %.1f s (%.0f records/s); "
        "%d not terminal, after waiting %.1f s",
        result.records,
        pages,
        result.bytes,
        summary["path"] or "nowhere (no messages and write_empty=False)",
        seconds,
        result.records / seconds if seconds else 0.0,
        non_terminal,
        waited_seconds,
    )
    if limits:
        log.info(
            "Requests in flight %s..%s (mean %s), %.1f s paused for rate limits, %d responses 429, "
            "%d retries",
            limits["concurrency_min"],
            limits["concurrency_max"],
            limits["concurrency_mean"],
            limits["paused_seconds"],
            limits["responses_429"],
            limits["retries"],
        )
    if non_terminal:
        log.warning("%d written messages are not in a terminal status: %s", non_terminal, dict(not_terminal))
    return summary


def check_xcom_max_records(xcom_max_records: Any) -> int:
    """
    Validate the operator's ``xcom_max_records``.

    :raises ValueError: unless it is an integer >= 0.
    """
    if isinstance(xcom_max_records, bool) or not isinstance(xcom_max_records, int) or xcom_max_records < 0:
        raise ValueError(f"xcom_max_records must be a non-negative integer, got {xcom_max_records!r}")
    return xcom_max_records


def xcom_cap_message(count: int, cap: int) -> str:
    """The error for an interval with more messages than ``xcom_max_records``; it names the fixes."""
    return (
        f"The interval holds {count} messages, more than xcom_max_records={cap} allowed in XCom. "
        "Set output_path (e.g. 's3://bucket/voicetrack/') to write them to object storage, "
        "or narrow the search."
    )


def resolve_format(output_format: str, compression: str | None) -> str:
    """
    Return the format name for the operator's ``output_format`` and ``compression`` arguments.

    It is one of :data:`~airflow_voicetrack.writers.FORMATS`.

    :raises ValueError: naming the argument and the accepted values.
    """
    if compression not in (None, "gzip"):
        raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
    name = (
        f"{output_format}.gz"
        if compression == "gzip" and not output_format.endswith(".gz")
        else output_format
    )
    if name not in FORMATS:
        hint = " (Parquet compresses internally; drop compression)" if output_format == "parquet" else ""
        raise ValueError(
            f"output_format={output_format!r} with compression={compression!r} is not supported{hint}; "
            f"use output_format one of {', '.join(FORMATS)}"
        )
    return name


def default_file_name(start: datetime, end: datetime, output_format: str) -> str:
    """
    Return the file name used when ``output_path`` is a directory.

    E.g. ``voicetrack_20261101T000000Z_20261102T000000Z.jsonl``.
    """
    return f"voicetrack_{_compact(start)}_{_compact(end)}.{output_format}"


def output_asset(output_path: str | ObjectStoragePath) -> Asset | None:
    """
    Return the Asset declared for ``output_path``.

    Its static part (see :class:`VoiceTrackingOperator`), without a connection id; None when it
    has no static part beyond the scheme.
    """
    text = output_path if isinstance(output_path, str) else f"{output_path.protocol}://{output_path.path}"
    template_at = min((i for i in (text.find("{{"), text.find("{%")) if i >= 0), default=-1)
    if template_at >= 0:
        text = text[: text.rfind("/", 0, template_at) + 1]
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not (host or parts.path.strip("/")):
        return None
    # Without the trailing "/": Airflow strips it from the URI but keeps it in the name, and matches
    # a downstream DAG's asset by both, so Asset("s3://b/voice/") and Asset("s3://b/voice") differ.
    # The slash-free spelling is the one Airflow's UI shows as the URI, and what people write.
    return Asset(urlunsplit(parts._replace(netloc=host, path=parts.path.rstrip("/"))))


def names_one_object(output_path: str | ObjectStoragePath) -> bool:
    """
    Whether ``output_path`` names the same object in every run.

    True for an ``ObjectStoragePath`` and for a URI string with no template that does not end with
    ``/``; False for a directory (one object per interval) or a templated path.
    """
    if isinstance(output_path, ObjectStoragePath):
        text = f"{output_path.protocol}://{output_path.path}"
    else:
        text = output_path
    return not text.endswith("/") and "{{" not in text and "{%" not in text


def warn_other_spelling(outlets: Iterable[Any], asset: Asset) -> None:
    """Warn, at parse time, about an outlet that spells the output's asset with a trailing ``/``."""
    for outlet in outlets:
        if isinstance(outlet, Asset) and outlet.uri == asset.uri and outlet.name != asset.name:
            warnings.warn(
                f"outlets has {outlet.name!r}, but this operator's output asset is {asset.name!r}: "
                f"Airflow treats the two as different assets. Use Asset({asset.name!r}) here and in the "
                "schedule of downstream DAGs (no trailing '/'), or leave outlets out: the operator "
                "declares it.",
                UserWarning,
                stacklevel=3,
            )


def split_interval(
    date_start: datetime | str, date_end: datetime | str, every: timedelta
) -> list[dict[str, str]]:
    """
    Split ``[date_start, date_end)`` into keyword arguments for dynamic task mapping.

    Consecutive windows of length ``every`` (the last shorter), so a long backfill spreads across
    workers::

        VoiceTrackingOperator.partial(task_id="extract", output_path="s3://bucket/voicetrack/").expand_kwargs(
            split_interval("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", timedelta(days=1))
        )

    With a directory ``output_path`` (ending with ``/``) every window writes its own object. A mapped
    task's outlets come from ``partial()``, which declares ``Asset("s3://bucket/voicetrack")`` from
    ``output_path`` there, so downstream DAGs scheduled on it get every window's asset event.

    :param date_start: Start, inclusive: an aware datetime or ISO-8601 string.
    :param date_end: End, exclusive.
    :param every: Window length, at least one second.
    :return: ``[{"date_start": "2026-01-01T00:00:00Z", "date_end": "2026-01-02T00:00:00Z"}, ...]``
    """
    if not isinstance(every, timedelta) or every < timedelta(seconds=1):
        raise ValueError(f"every must be a timedelta of at least one second, got {every!r}")
    start, end = parse_range(date_start, date_end)
    assert start is not None and end is not None
    return [
        {"date_start": format_datetime(lower), "date_end": format_datetime(upper)}
        for lower, upper in split_windows(start, end, every)
    ]


def _compact(moment: datetime) -> str:
    return format_datetime(moment).replace("-", "").replace(":", "")
