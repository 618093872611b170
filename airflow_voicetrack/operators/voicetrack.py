"""Extract the voice messages of a data interval to object storage or XCom."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseHook, BaseOperator, ObjectStoragePath, Variable, conf
from airflow.sdk.definitions.timetables.simple import NullTimetable, OnceTimetable
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from airflow.sdk.log import mask_secret

from airflow_voicetrack.constants import DEFAULT_POOL_SLOTS
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.lineage import operator_lineage
from airflow_voicetrack.output import (
    default_file_name,
    fixed_path_message,
    names_one_object,
    output_asset,
    resolve_format,
    split_interval,
    warn_other_spelling,
)
from airflow_voicetrack.personal_data import PersonalDataFilter, validate_key, validate_paths
from airflow_voicetrack.protocol import (
    LimitStats,
    SearchQuery,
    format_datetime,
    normalize_filters,
    parse_datetime,
    resolve_campaign_tracking_id,
    search_query,
    validate_page_size,
    validate_sort,
)
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger
from airflow_voicetrack.waiting import (
    IntervalWait,
    StatusCriteria,
    StatusGuard,
    WaitEvent,
    unsettled_message,
)
from airflow_voicetrack.writers import WriteResult, object_uri, write_messages

# split_interval is documented here, next to the operator whose expand_kwargs it feeds.
__all__ = ["VoiceTrackingOperator", "default_pool_slots", "split_interval"]

if TYPE_CHECKING:
    import pendulum
    from airflow.sdk import DAG, Context

#: Default ``date_start`` / ``date_end``: the run's data interval. Runs without a logical date have no
#: ``data_interval_*`` in their context; ``default(None)`` lets ``empty_interval`` handle them.
DEFAULT_DATE_START = "{{ data_interval_start | default(None) }}"
DEFAULT_DATE_END = "{{ data_interval_end | default(None) }}"
#: Accepted values of ``empty_interval``.
EMPTY_INTERVAL_POLICIES: tuple[str, ...] = ("fail", "skip", "lookback")
#: Accepted values of ``on_unsettled``.
ON_UNSETTLED: tuple[str, ...] = ("fail", "write")
#: Output formats written from the raw bytes of each message (see ``VoiceTrackHook.search_messages``).
RAW_FORMATS: frozenset[str] = frozenset({"jsonl", "jsonl.gz"})

EMPTY_INTERVAL_HELP = (
    "Airflow 3 runs of CronTriggerTimetable (the default for cron strings and presets such as "
    "'@daily') have data_interval_start == data_interval_end, and runs triggered without a logical date "
    "have no data interval, so there is nothing to extract. Schedule the DAG with "
    "CronDataIntervalTimetable('0 0 * * *', timezone='UTC') or "
    "CronTriggerTimetable('0 0 * * *', timezone='UTC', interval=timedelta(days=1)), "
    "pass date_start and date_end, or set empty_interval='skip', or empty_interval='lookback' with "
    "lookback=timedelta(...)."
)


@contextmanager
def gc_frozen() -> Iterator[None]:
    """
    Freeze the garbage collector's view of everything alive now, for the extraction.

    Move everything alive now (Airflow's own modules) out of the garbage collector's sight while
    the extraction allocates millions of short-lived dicts: each full collection would otherwise
    walk all of it. Airflow does the same in its forked processes (figures in
    ``benchmarks/RESULTS.md``). No collection first: in a task process it is slow, and what garbage
    is frozen is collected after.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class VoiceTrackingOperator(BaseOperator):
    """
    Extract every voice message created in ``[date_start, date_end)`` to object storage or XCom.

    **Object storage** (``output_path`` set): the messages are streamed, with flat memory, into one
    object in ``output_format`` (see :mod:`airflow_voicetrack.writers` for the formats and the CSV and
    Parquet columns). The object is replaced atomically: readers see the old object or the complete
    new one, never a partial one, and a rerun of the interval replaces it. When ``output_path`` is a
    URI string ending with ``/`` it is a directory and the file is named after the interval and the
    format, e.g. ``voicetrack_20261101T000000Z_20261102T000000Z.jsonl``, which makes the default layout
    partitioned by the data interval::

        VoiceTrackingOperator(task_id="extract", output_path="s3://bucket/voicetrack/", output_conn_id="aws")

    The task returns a summary to XCom: ``path`` (URI without the connection id), ``conn_id``,
    ``records``, ``bytes``, ``format``, ``date_start``, ``date_end``, ``pages``, ``seconds``,
    ``non_terminal`` (written messages whose status is not terminal), ``waited_seconds`` and ``limits``
    (the search's effective concurrency min/mean/max, seconds paused for rate limits, 429s met,
    retries; see ``docs/rate-limits.md``).

    **Calls still in progress** (``wait_for_terminal=True``, the default): a run right after its
    interval ends finds the interval's last calls still ``Queued``, ``Initiated``, ``Ringing`` or
    ``InProgress``, and nothing would ever rewrite them. So the task first counts, with one request,
    the interval's messages that are not in one of ``terminal_statuses``. None (every past interval):
    it extracts at once. Otherwise it checks again every ``poke_interval`` (one request per check,
    one log line each) for up to ``settle_timeout``, then extracts. Deferrable, it waits in the
    triggerer (:class:`~airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger`) and holds
    no worker slot; not deferrable, it sleeps on the worker, **holding its worker slot and its pool
    slots** for up to ``settle_timeout``. What it writes is checked too: a message that is not
    terminal (a call the search shows only now) aborts the write, leaving the previous object in
    place, and the task waits and extracts again within ``settle_timeout``. So the object holds only
    terminal statuses unless ``wait_for_terminal=False`` (a snapshot) or ``on_unsettled="write"``.

    **One object per interval**: in a DAG with a schedule (anything but ``None`` and ``"@once"``) or in
    a mapped task, an ``output_path`` that names one object and has no template in it would be
    replaced by every run, each interval overwriting the last. Such a task fails before any request:
    when the DAG is parsed if its schedule is known then, else when the task starts. End the path with
    ``/``, template the interval into it (``{{ data_interval_start | ds }}``), or pass
    ``overwrite_each_run=True`` to keep one object that every run replaces.

    The output is declared as an Airflow :class:`~airflow.sdk.Asset` outlet, whose URI is the static
    part of ``output_path`` **without a trailing** ``/``: the object itself when ``output_path`` has no
    template and names a file, else the directory before the first template or the trailing ``/``
    (``s3://bucket/voicetrack/`` gives ``Asset("s3://bucket/voicetrack")``, the URI Airflow itself
    shows for either spelling). Airflow matches a downstream DAG's asset by name and URI, so schedule
    it on that exact string, without the ``/``. Every successful run emits an asset event whose
    ``extra`` holds the summary, so a downstream DAG scheduled on the asset finds the object's path in
    ``triggering_asset_events``. A mapped task (``partial()``) declares the same outlet.

    **XCom** (``output_path`` None): the task returns the list of messages, but fails when there are
    more than ``xcom_max_records`` (counted with one request first, and checked again while reading).
    It waits for the calls by the same rules and logs ``non_terminal`` and ``waited_seconds``.

    **Data interval**: Airflow 3's default timetable for cron schedules, ``CronTriggerTimetable``, gives
    zero-width intervals, and manual runs without a logical date render ``None``. Such an interval is
    never queried: by default the task fails without retry and names the fix; see ``empty_interval``.

    :param voicetrack_conn_id: The voice tracking connection.
    :param date_start: Start of the interval, inclusive: an aware datetime or ISO-8601 string.
        Default: the data interval's start, :data:`DEFAULT_DATE_START`. (templated)
    :param date_end: End of the interval, exclusive. Default: the data interval's end. (templated)
    :param filters: Search filters: dicts ``{"fieldName", "searchOperator", "searchTerm"}`` or
        :class:`~airflow_voicetrack.protocol.SearchFilter` objects, or a JSON string of such a list;
        combined with AND. (templated)
    :param campaign_tracking_id: Only messages of the campaign with this tracking id (the API's
        ``trackingId``): the id Routee returns when the campaign is created and shows in its
        console, not the campaign *name* that messages carry in ``campaign`` (match a name with a
        ``{"fieldName": "campaign", ...}`` filter). (templated)
    :param campaign_id: Deprecated name of ``campaign_tracking_id`` (a ``DeprecationWarning``;
        removed in the next minor version).
    :param sort: ``field``, ``field,asc`` or ``field,desc``. (templated)
    :param tagged: The API's unnamed boolean search parameter; sent only when set.
    :param output_path: Where to write: a URI (``file://``, ``s3://`` or any scheme
        :class:`~airflow.sdk.ObjectStoragePath` knows), ending with ``/`` for a directory, or an
        ``ObjectStoragePath`` of the file. None returns the messages to XCom. (templated)
    :param output_conn_id: Connection of the object store, e.g. ``aws_default`` for S3.
    :param overwrite_each_run: Allow an ``output_path`` that names one object, with no template, in a
        scheduled DAG or a mapped task: every run replaces it. Default ``False``: such a path fails.
    :param output_format: ``jsonl`` (default), ``csv``, ``parquet`` (needs the ``[parquet]`` extra),
        or ``jsonl.gz`` / ``csv.gz`` for gzip-compressed output.
    :param compression: ``"gzip"`` to compress ``jsonl`` or ``csv``; the same as the ``.gz`` formats.
    :param page_size: Messages per page (1 to 2000); default: the connection's.
    :param max_concurrency: The most pages fetched at once (the adaptive limiter keeps fewer while the
        service throttles or slows down); default: the connection's. Also the default of
        ``pool_slots``.

    **Shared API budget** (pools): the task's ``pool_slots`` defaults to ``max_concurrency``, or to
    :data:`~airflow_voicetrack.constants.DEFAULT_POOL_SLOTS` (4) when that is not given, and at run
    time the task keeps at most ``min(connection's max_concurrency, pool_slots)`` requests in flight
    (and never more than ``max_concurrency``). So a pool of N slots, e.g. ``pool="routee_api"`` on every
    task that calls the API, caps the requests in flight across all workers and DAGs at N. A deferred
    sensor holds no pool slot while it waits in the triggerer. Size the pool at least as large as the
    largest ``pool_slots``: Airflow never starts a task that asks for more slots than its pool has.
    :param xcom_max_records: Most messages returned to XCom when ``output_path`` is None.
    :param empty_interval: What to do when the interval is zero-width or missing: ``"fail"`` (default,
        without retry), ``"skip"`` the task, or ``"lookback"``: extract ``[date_end - lookback, date_end)``,
        where a missing ``date_end`` is the run's ``run_after``.
    :param lookback: The window for ``empty_interval="lookback"``.
    :param write_empty: Write a valid empty object (empty file, CSV header, Parquet schema) when the
        interval has no messages, so downstream can tell "nothing there" from "not extracted".
    :param exclude_fields: Dotted paths removed from every message, e.g. ``["message.text",
        "recordings.url"]``; in CSV and Parquet their columns are dropped. See
        :mod:`airflow_voicetrack.personal_data` for the accepted paths.
    :param hash_fields: Dotted paths of text whose values are replaced by their HMAC-SHA256 (64 hex
        characters) under a key read at run time from ``hash_key_conn_id`` or ``hash_key_variable``,
        e.g. ``["to", "from", "recordings.from", "recordings.to"]``: joins on them still work, and
        the values cannot be recovered without the key.
    :param hash_key_conn_id: A connection whose password is the hash key (at least 16 characters).
    :param hash_key_variable: An Airflow variable holding the hash key, instead of a connection.
    :param wait_for_terminal: Wait until every message of the interval is terminal before extracting
        (default). ``False`` extracts a snapshot at once, as in 0.1.0.
    :param terminal_statuses: Statuses that count as terminal; the sensor's default set (the six
        final statuses and ``Unknown``, on which Routee's docs disagree) and validation.
    :param poke_interval: Time between two checks while waiting: seconds or a ``timedelta``; default
        60 s. Each check costs one request.
    :param settle_timeout: Longest wait for the calls to finish: seconds or a ``timedelta``;
        default one hour, at least ``poke_interval``.
    :param on_unsettled: When ``settle_timeout`` passes with calls unfinished: ``"fail"`` (default)
        fails the task (its retries apply) and writes nothing; the error gives the count by status and
        example ids. ``"write"`` extracts anyway, logs a warning and reports ``non_terminal``.
    :param deferrable: Wait in the triggerer, holding no worker slot; default
        ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = (
        "date_start",
        "date_end",
        "filters",
        "campaign_tracking_id",
        "sort",
        "output_path",
    )
    template_fields_renderers = {"filters": "json"}
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        voicetrack_conn_id: str = VoiceTrackHook.default_conn_name,
        date_start: str | datetime | None = DEFAULT_DATE_START,
        date_end: str | datetime | None = DEFAULT_DATE_END,
        filters: list[dict[str, str]] | list[Any] | str | None = None,
        campaign_tracking_id: str | None = None,
        sort: str | None = None,
        tagged: bool | None = None,
        output_path: str | ObjectStoragePath | None = None,
        output_conn_id: str | None = None,
        overwrite_each_run: bool = False,
        output_format: str = "jsonl",
        compression: Literal["gzip"] | None = None,
        page_size: int | None = None,
        max_concurrency: int | None = None,
        xcom_max_records: int = 10_000,
        empty_interval: Literal["fail", "skip", "lookback"] = "fail",
        lookback: timedelta | None = None,
        write_empty: bool = True,
        exclude_fields: Sequence[str] | None = None,
        hash_fields: Sequence[str] | None = None,
        hash_key_conn_id: str | None = None,
        hash_key_variable: str | None = None,
        wait_for_terminal: bool = True,
        terminal_statuses: Collection[str] | None = None,
        poke_interval: float | timedelta = 60,
        settle_timeout: float | timedelta = timedelta(hours=1),
        on_unsettled: Literal["fail", "write"] = "fail",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        campaign_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        # stacklevel 4: Airflow wraps __init__ (apply_defaults), the DAG file is one frame further.
        campaign_tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id, stacklevel=4)
        if max_concurrency is not None and (isinstance(max_concurrency, bool) or max_concurrency < 1):
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        kwargs.setdefault("pool_slots", default_pool_slots(max_concurrency))
        super().__init__(**kwargs)
        self.voicetrack_conn_id = voicetrack_conn_id
        self.date_start = date_start
        self.date_end = date_end
        self.filters = filters
        self.campaign_tracking_id = campaign_tracking_id
        self.sort = sort
        self.tagged = tagged
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.overwrite_each_run = bool(overwrite_each_run)
        #: ``output_path`` as given names one object for every run (checked against the schedule).
        self._one_object = output_path is not None and names_one_object(output_path)
        # Known at parse time inside ``with DAG(...)``; else execute() checks, before any request.
        if self.has_dag() and (error := self._one_object_error(self.dag)):
            raise ValueError(error)
        self.output_format = resolve_format(output_format, compression)
        self.page_size = None if page_size is None else validate_page_size(page_size)
        self.max_concurrency = max_concurrency
        if (
            isinstance(xcom_max_records, bool)
            or not isinstance(xcom_max_records, int)
            or xcom_max_records < 0
        ):
            raise ValueError(f"xcom_max_records must be a non-negative integer, got {xcom_max_records!r}")
        self.xcom_max_records = xcom_max_records
        self.empty_interval, self.lookback = _check_empty_interval(empty_interval, lookback)
        self.write_empty = write_empty
        self.exclude_fields, self.hash_fields = validate_paths(exclude_fields, hash_fields)
        self.hash_key_conn_id, self.hash_key_variable = _check_hash_key_source(
            self.hash_fields, hash_key_conn_id, hash_key_variable
        )
        self.wait_for_terminal = bool(wait_for_terminal)
        self.criteria = StatusCriteria.build(terminal_statuses=terminal_statuses, count_only=True)
        self.poke_interval = _seconds(poke_interval, "poke_interval")
        self.settle_timeout = _seconds(settle_timeout, "settle_timeout")
        if self.settle_timeout < self.poke_interval:
            raise ValueError(
                f"settle_timeout ({self.settle_timeout:g} s) is shorter than poke_interval "
                f"({self.poke_interval:g} s), so the wait could not check even once; raise "
                "settle_timeout or lower poke_interval."
            )
        if on_unsettled not in ON_UNSETTLED:
            raise ValueError(
                f"on_unsettled must be one of {', '.join(map(repr, ON_UNSETTLED))}, got {on_unsettled!r}"
            )
        self.on_unsettled = on_unsettled
        self.deferrable = deferrable
        self.output_asset = None if output_path is None else output_asset(output_path)
        if self.output_asset is not None:
            warn_other_spelling(self.outlets, self.output_asset)
            if self.output_asset not in self.outlets:
                self.outlets.append(self.output_asset)
        #: what ``execute`` wrote, for the OpenLineage COMPLETE event
        self._written: WriteResult | None = None
        self._rendered_interval: tuple[pendulum.DateTime, pendulum.DateTime] | None = None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """
        Start a mapped task (see ``BaseOperator.partial``), with ``pool_slots`` defaulting as in ``__init__``.

        The scheduler reads a mapped task's slots from ``partial()``, before any ``__init__`` runs.
        """
        max_concurrency = kwargs.get("max_concurrency")
        output_path = kwargs.get("output_path")
        asset = output_asset(output_path) if isinstance(output_path, (str, ObjectStoragePath)) else None
        if (
            isinstance(output_path, (str, ObjectStoragePath))
            and names_one_object(output_path)
            and not kwargs.get("overwrite_each_run")
        ):
            raise ValueError(fixed_path_message(output_path, "every mapped task instance writes it"))
        if asset is not None:
            # A mapped task's outlets are read from partial(), before any __init__ runs.
            outlets = list(kwargs.get("outlets") or [])
            warn_other_spelling(outlets, asset)
            kwargs["outlets"] = outlets if asset in outlets else [*outlets, asset]
        if "pool_slots" not in kwargs and "pool_slots" not in (kwargs.get("default_args") or {}):
            kwargs["pool_slots"] = default_pool_slots(
                max_concurrency if isinstance(max_concurrency, int) else None
            )
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> VoiceTrackHook:
        """
        The hook, built from ``voicetrack_conn_id`` with this task's page size and concurrency.

        Its concurrency is the connection's ``max_concurrency`` capped by ``pool_slots`` (and by the
        ``max_concurrency`` argument), so the task never has more requests in flight than pool slots.
        """
        limit = min(self.pool_slots, self.max_concurrency or self.pool_slots)
        connection_limit = VoiceTrackHook(self.voicetrack_conn_id).settings.max_concurrency
        concurrency = min(connection_limit, limit)
        self.log.info(
            "Keeping at most %d requests in flight: the connection allows %d, pool_slots=%d in pool %r",
            concurrency,
            connection_limit,
            self.pool_slots,
            self.pool,
        )
        return VoiceTrackHook(self.voicetrack_conn_id, page_size=self.page_size, max_concurrency=concurrency)

    def execute(self, context: Context) -> dict[str, Any] | list[dict[str, Any]]:
        """Extract the interval's messages; return the summary (or the messages, for XCom)."""
        if error := self._one_object_error(context["dag"]):
            raise AirflowFailException(error)
        start, end = self._interval(context)
        # Rendered values and the hash key are validated here, before any request.
        _filters(self.filters)
        validate_sort(self.sort or None)
        self._personal_data_filter()
        if self.output_path is not None:
            self._final_path(start, end)
        self._rendered_interval = start, end
        if not self.wait_for_terminal:
            return self._extract(context, strict=False, waited=None)
        started = time.time()
        pending = self._check(1)
        return self._settle(context, started=started, pending=pending, checks=1, waited=bool(pending))

    def execute_complete(
        self, context: Context, event: dict[str, Any], checks: int = 1
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """
        Resume after the trigger fired: extract, or apply ``on_unsettled`` on a timeout.

        :param checks: checks made before deferring (for the log's numbering).
        :raises AirflowException: the trigger hit an error that waiting does not fix.
        """
        outcome = WaitEvent.decode(event)
        if outcome.status not in ("success", "timeout") or outcome.timeout_at is None:
            raise AirflowException(f"Waiting for the interval's calls failed: {outcome.message or event}")
        # The wait's start, from the deadline the trigger echoes back (see _defer_wait).
        started = datetime.fromisoformat(outcome.timeout_at).timestamp() - self.settle_timeout
        self._rendered_interval = self._interval(context)
        if outcome.status == "success":
            return self._settle(context, started=started, pending=0, checks=checks, waited=True)
        return self._unsettled(context, started, (outcome.summary or {}).get("pending"))

    def _settle(
        self, context: Context, *, started: float, pending: int, checks: int, waited: bool
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Wait until no message of the interval is pending, then extract (see :class:`IntervalWait`)."""
        return self._wait.settle(
            started=started,
            pending=pending,
            checks=checks,
            waited=waited,
            check=self._check,
            extract=lambda strict, since: self._extract(context, strict=strict, waited=since),
            defer=self._defer_wait if self.deferrable else None,
            unsettled=lambda pending: self._unsettled(context, started, pending),
        )

    def _check(self, number: int, deadline: float | None = None) -> int:
        """Count the interval's messages that are not terminal (one request); log one line."""
        return self._wait.check(number, deadline)

    def _defer_wait(self, checks: int, deadline: float) -> None:
        """Hand the wait to the triggerer; the task resumes in :meth:`execute_complete`."""
        target = self._target
        trigger = VoiceMessageStatusTrigger(
            voicetrack_conn_id=self.voicetrack_conn_id,
            target=target,
            criteria=self.criteria,
            poke_interval=self.poke_interval,
            first_check_after=self.poke_interval,
            timeout_at=datetime.fromtimestamp(deadline, tz=timezone.utc),
        )
        self.log.info(
            "Deferring: the triggerer checks every %g s until the calls have finished", self.poke_interval
        )
        self.defer(trigger=trigger, method_name="execute_complete", kwargs={"checks": checks})

    def _unsettled(
        self, context: Context, started: float, pending: int | None
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Apply ``on_unsettled`` once ``settle_timeout`` has passed with calls unfinished."""
        if self.on_unsettled == "write":
            self.log.warning(
                "%s messages of the interval are still not terminal after settle_timeout=%s; writing "
                "them as they are (on_unsettled='write').",
                "Some" if pending is None else pending,
                timedelta(seconds=self.settle_timeout),
            )
            return self._extract(context, strict=False, waited=started)
        by_status, example_ids = self._wait.unsettled()
        if not any(by_status.values()):
            # Finished between the last check and now: nothing is left to wait for.
            return self._extract(context, strict=True, waited=started)
        raise AirflowException(
            unsettled_message(by_status, example_ids, settle_timeout=timedelta(seconds=self.settle_timeout))
        )

    @cached_property
    def _wait(self) -> IntervalWait:
        return IntervalWait(
            self.hook,
            self._target,
            self.criteria,
            poke_interval=self.poke_interval,
            settle_timeout=self.settle_timeout,
            log=self.log,
        )

    @cached_property
    def _target(self) -> SearchQuery:
        """The interval's search, as the status checks send it."""
        assert self._rendered_interval is not None
        start, end = self._rendered_interval
        return search_query(
            date_start=start,
            date_end=end,
            filters=_filters(self.filters),
            campaign_tracking_id=self.campaign_tracking_id or None,
            tagged=self.tagged,
        )

    def _extract(
        self, context: Context, *, strict: bool, waited: float | None
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """
        Extract the interval once.

        :param strict: raise :class:`NotTerminalError` (writing nothing) on a message that is not
            terminal; else count such messages.
        :param waited: when the wait started (epoch seconds), ``None`` when there was no wait.
        """
        assert self._rendered_interval is not None
        start, end = self._rendered_interval
        waited_seconds = 0.0 if waited is None else round(time.time() - waited, 3)
        search: dict[str, Any] = {
            "filters": _filters(self.filters),
            "campaign_tracking_id": self.campaign_tracking_id or None,
            "tagged": self.tagged,
        }
        sort = validate_sort(self.sort or None)
        personal_data = self._personal_data_filter()
        guard = StatusGuard(self.criteria.terminal_statuses, strict=strict)
        if self.output_path is None:
            returned = self._to_xcom(start, end, search, sort, personal_data, guard)
            self.log.info(
                "Returning %d messages to XCom: non_terminal=%d, waited_seconds=%.1f",
                len(returned),
                guard.non_terminal,
                waited_seconds,
            )
            return returned

        path = self._final_path(start, end)
        started = time.monotonic()
        # Statuses are checked as the API sent them, before any field is removed or hashed. JSON Lines
        # gets each message's bytes as the API sent them: no decoding, no re-encoding, unless personal
        # data must be removed or hashed, which needs the decoded message.
        raw = self.output_format in RAW_FORMATS and not personal_data.active
        messages = guard.check(self.hook.search_messages(start, end, sort=sort, raw=raw, **search))
        if personal_data.active:
            messages = personal_data.apply_all(messages)
        with gc_frozen():
            result = write_messages(
                messages,
                path,
                self.output_format,
                write_empty=self.write_empty,
                columns=personal_data.columns(),
            )
        seconds = time.monotonic() - started
        search_stats = self.hook.last_search_stats or {}
        pages = search_stats.get("pages", 0)
        limits = {key: search_stats[key] for key in LimitStats().as_dict() if key in search_stats}
        summary = {
            "path": None if result.path is None else object_uri(result.path),
            "conn_id": path.conn_id,
            "records": result.records,
            "bytes": result.bytes,
            "format": self.output_format,
            "date_start": format_datetime(start),
            "date_end": format_datetime(end),
            "pages": pages,
            "seconds": round(seconds, 3),
            "non_terminal": guard.non_terminal,
            "waited_seconds": waited_seconds,
            "limits": limits,
        }
        self.log.info(
            "Extracted %d messages in %d pages, %d bytes to %s in %.1f s (%.0f records/s); "
            "%d not terminal, after waiting %.1f s",
            result.records,
            pages,
            result.bytes,
            summary["path"] or "nowhere (no messages and write_empty=False)",
            seconds,
            result.records / seconds if seconds else 0.0,
            guard.non_terminal,
            waited_seconds,
        )
        if limits:
            self.log.info(
                "Requests in flight %s..%s (mean %s), %.1f s paused for rate limits, %d responses 429, "
                "%d retries",
                limits["concurrency_min"],
                limits["concurrency_max"],
                limits["concurrency_mean"],
                limits["paused_seconds"],
                limits["responses_429"],
                limits["retries"],
            )
        if guard.non_terminal:
            self.log.warning(
                "%d written messages are not in a terminal status: %s",
                guard.non_terminal,
                dict(guard.by_status),
            )
        self._written = result
        if self.output_asset is not None:
            context["outlet_events"][self.output_asset].extra = summary
        return summary

    def _one_object_error(self, dag: DAG) -> str | None:
        """The error when ``output_path`` names one object and ``dag``'s runs would each replace it."""
        if not self._one_object or self.overwrite_each_run:
            return None
        assert self.output_path is not None
        timetable = dag.timetable
        if not getattr(timetable, "can_be_scheduled", True) or isinstance(
            timetable, (NullTimetable, OnceTimetable)
        ):
            return None
        return fixed_path_message(self.output_path, f"DAG {dag.dag_id!r} has a schedule")

    def _interval(self, context: Context) -> tuple[pendulum.DateTime, pendulum.DateTime]:
        """Validate the rendered interval and apply ``empty_interval`` to a zero-width or missing one."""
        start, end = _moment(self.date_start, "date_start"), _moment(self.date_end, "date_end")
        if start is not None and end is not None:
            if end > start:
                return start, end
            if end < start:
                raise AirflowFailException(
                    f"date_end ({format_datetime(end)}) is before date_start ({format_datetime(start)})"
                )
        shown = f"date_start={self.date_start!r}, date_end={self.date_end!r}"
        if self.empty_interval == "skip":
            raise AirflowSkipException(
                f"Skipping: the data interval is empty ({shown}). {EMPTY_INTERVAL_HELP}"
            )
        if self.empty_interval == "lookback":
            assert self.lookback is not None  # checked in __init__
            if end is None:
                end = _moment(context["dag_run"].run_after, "run_after")
                assert end is not None
            self.log.info(
                "The data interval is empty (%s); looking back %s from %s", shown, self.lookback, end
            )
            return end - self.lookback, end
        raise AirflowFailException(f"The data interval is empty ({shown}). {EMPTY_INTERVAL_HELP}")

    def _personal_data_filter(self) -> PersonalDataFilter:
        """
        Build the filter of ``exclude_fields`` and ``hash_fields``.

        The hash key is read before any request, registered with the secrets masker, never logged.
        """
        key = None
        if self.hash_fields:
            if self.hash_key_conn_id is not None:
                source = f"the password of connection {self.hash_key_conn_id!r} (hash_key_conn_id)"
                value = BaseHook.get_connection(self.hash_key_conn_id).password
            else:
                assert self.hash_key_variable is not None  # checked in __init__
                source = f"variable {self.hash_key_variable!r} (hash_key_variable)"
                value = Variable.get(self.hash_key_variable, default=None)
            if isinstance(value, str) and value:
                mask_secret(value)
            key = validate_key(value, source)
            self.log.info("Hashing %s with the key in %s", ", ".join(self.hash_fields), source)
        if self.exclude_fields:
            self.log.info("Removing %s from every message", ", ".join(self.exclude_fields))
        return PersonalDataFilter(self.exclude_fields, self.hash_fields, key)

    def _final_path(self, start: pendulum.DateTime, end: pendulum.DateTime) -> ObjectStoragePath:
        assert self.output_path is not None
        uri = self.output_path if isinstance(self.output_path, str) else None
        if uri is not None and "://" not in uri and not uri.startswith("/"):
            raise ValueError(
                f"output_path {uri!r} is a relative path, which would depend on the "
                "worker's working directory; use a URI such as 'file:///data/voicetrack/' or "
                "'s3://bucket/prefix/'"
            )
        try:
            path = ObjectStoragePath(self.output_path, conn_id=self.output_conn_id)
        except ValueError as err:  # fsspec: "Unsupported filesystem"/"Protocol not known"
            raise ValueError(
                f"output_path {self.output_path!r}: {err}; use a URI whose scheme has an fsspec "
                "file system, such as 'file:///data/voicetrack/' or 's3://bucket/prefix/' "
                "(s3 needs the [s3] extra)"
            ) from err
        # ObjectStoragePath drops a trailing "/", so only a URI string can name a directory.
        if isinstance(self.output_path, str) and self.output_path.endswith("/"):
            path = path / default_file_name(start, end, self.output_format)
        return path

    def _to_xcom(
        self,
        start: pendulum.DateTime,
        end: pendulum.DateTime,
        search: dict[str, Any],
        sort: str | None,
        personal_data: PersonalDataFilter,
        guard: StatusGuard,
    ) -> list[dict[str, Any]]:
        count = self.hook.count_messages(start, end, **search)
        if count > self.xcom_max_records:
            raise AirflowFailException(_xcom_cap_message(count, self.xcom_max_records))
        messages = list(
            islice(self.hook.search_messages(start, end, sort=sort, **search), self.xcom_max_records + 1)
        )
        if len(messages) > self.xcom_max_records:
            raise AirflowFailException(_xcom_cap_message(len(messages), self.xcom_max_records))
        return [personal_data.apply(message) for message in guard.check(messages)]

    def get_openlineage_facets_on_start(self) -> Any:
        """
        Return OpenLineage facets for START.

        Input: the API's search endpoint; output: the object this run will write (with its schema
        for CSV and Parquet).

        The object is known when the rendered interval is; otherwise (an empty interval that
        ``execute`` will skip or fail, XCom output) START names no output.
        """
        path = None
        if self.output_path is not None:
            try:
                from airflow.sdk import get_current_context

                try:
                    context: Any = get_current_context()
                except RuntimeError:  # outside the task's execution context
                    context = {}
                path = self._final_path(*self._interval(context))
            except Exception as err:  # lineage must never fail the task; execute reports the error
                self.log.debug("No OpenLineage output at start: %s", err)
        return self._lineage(path, None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        Return OpenLineage facets for COMPLETE.

        Input: the API's search endpoint; output: the written object, with its schema (CSV and
        Parquet) and output statistics (records and bytes).
        """
        written = self._written
        return self._lineage(None if written is None else written.path, written)

    def _lineage(self, path: ObjectStoragePath | None, written: WriteResult | None) -> Any:
        return operator_lineage(
            self.hook.settings.base_url, self.output_format, self.exclude_fields, path, written
        )


def default_pool_slots(max_concurrency: int | None) -> int:
    """
    Return the pool slots a task takes by default: one per request it may keep in flight.

    :param max_concurrency: the operator's ``max_concurrency`` argument; None for the default (4,
        not the connection's default ceiling: existing pools sized for 4 keep working).
    """
    return DEFAULT_POOL_SLOTS if max_concurrency is None else max_concurrency


def _check_empty_interval(empty_interval: str, lookback: timedelta | None) -> tuple[str, timedelta | None]:
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


def _check_hash_key_source(
    hash_fields: Sequence[str], conn_id: str | None, variable: str | None
) -> tuple[str | None, str | None]:
    if conn_id is not None and variable is not None:
        raise ValueError("set either hash_key_conn_id or hash_key_variable, not both")
    if hash_fields and conn_id is None and variable is None:
        raise ValueError(
            "hash_fields needs a key: set hash_key_conn_id (a connection whose password is the key) or "
            "hash_key_variable (an Airflow variable holding it); never put the key in the DAG file"
        )
    if not hash_fields and (conn_id is not None or variable is not None):
        raise ValueError("hash_key_conn_id and hash_key_variable are used only with hash_fields")
    for name, value in (("hash_key_conn_id", conn_id), ("hash_key_variable", variable)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return conn_id, variable


def _seconds(value: Any, name: str) -> float:
    """A positive duration given as seconds or a ``timedelta``, in seconds."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


def _moment(value: Any, name: str) -> pendulum.DateTime | None:
    """Parse a rendered date to the second; None when missing (``None`` or the text ``"None"``)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return parse_datetime(value, name).set(microsecond=0)


def _filters(filters: Any) -> list[dict[str, str]]:
    if isinstance(filters, str):
        try:
            filters = json.loads(filters) if filters.strip() else None
        except json.JSONDecodeError as err:
            raise ValueError(f"filters rendered to {filters!r}, which is not a JSON list: {err}") from None
    return normalize_filters(filters)


def _xcom_cap_message(count: int, cap: int) -> str:
    return (
        f"The interval holds {count} messages, more than xcom_max_records={cap} allowed in XCom. "
        "Set output_path (e.g. 's3://bucket/voicetrack/') to write them to object storage, "
        "or narrow the search."
    )
