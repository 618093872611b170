"""Extract the voice messages of a data interval to object storage or XCom."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property, partial
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator, ObjectStoragePath, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_voicetrack.constants import DEFAULT_POOL_SLOTS
from airflow_voicetrack.data_interval import check_empty_interval, data_interval, rendered_filters
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.lineage import operator_lineage
from airflow_voicetrack.output import (
    check_xcom_max_records,
    extraction_summary,
    final_path,
    fixed_path_message,
    names_one_object,
    one_object_error,
    output_asset,
    resolve_format,
    split_interval,
    warn_other_spelling,
    xcom_cap_message,
)
from airflow_voicetrack.personal_data import (
    PersonalDataFilter,
    check_hash_key_source,
    read_filter,
    validate_paths,
)
from airflow_voicetrack.protocol import (
    SearchQuery,
    resolve_campaign_tracking_id,
    search_query,
    validate_page_size,
    validate_sort,
)
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger
from airflow_voicetrack.waiting import IntervalWait, StatusCriteria, StatusGuard, check_settle_arguments
from airflow_voicetrack.writers import RAW_FORMATS, WriteResult, gc_frozen, write_messages

# split_interval is documented here, next to the operator whose expand_kwargs it feeds.
__all__ = ["VoiceTrackingOperator", "default_pool_slots", "split_interval"]

if TYPE_CHECKING:
    import pendulum
    from airflow.sdk import DAG, Context

#: Default ``date_start`` / ``date_end``: the run's data interval. Runs without a logical date have no
#: ``data_interval_*`` in their context; ``default(None)`` lets ``empty_interval`` handle them.
DEFAULT_DATE_START = "{{ data_interval_start | default(None) }}"
DEFAULT_DATE_END = "{{ data_interval_end | default(None) }}"


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
        self.xcom_max_records = check_xcom_max_records(xcom_max_records)
        self.empty_interval, self.lookback = check_empty_interval(empty_interval, lookback)
        self.write_empty = write_empty
        self.exclude_fields, self.hash_fields = validate_paths(exclude_fields, hash_fields)
        self.hash_key_conn_id, self.hash_key_variable = check_hash_key_source(
            self.hash_fields, hash_key_conn_id, hash_key_variable
        )
        self.wait_for_terminal = bool(wait_for_terminal)
        self.criteria = StatusCriteria.build(terminal_statuses=terminal_statuses, count_only=True)
        self.poke_interval, self.settle_timeout, self.on_unsettled = check_settle_arguments(
            poke_interval, settle_timeout, on_unsettled
        )
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
        rendered_filters(self.filters)
        validate_sort(self.sort or None)
        self._personal_data_filter()
        if self.output_path is not None:
            self._final_path(start, end)
        self._rendered_interval = start, end
        if not self.wait_for_terminal:
            return self._extract(context, strict=False, waited=None)
        started = time.time()
        pending = self._check(1)
        return self._wait.settle(
            started=started,
            pending=pending,
            checks=1,
            waited=bool(pending),
            check=self._check,
            extract=partial(self._extract, context),
            defer=self._defer_wait if self.deferrable else None,
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any], checks: int = 1
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """
        Resume after the trigger fired: extract, or apply ``on_unsettled`` on a timeout.

        :param checks: checks made before deferring (for the log's numbering).
        :raises AirflowException: the trigger hit an error that waiting does not fix.
        """
        self._rendered_interval = self._interval(context)
        return self._wait.resume(
            event,
            checks=checks,
            check=self._check,
            extract=partial(self._extract, context),
            defer=self._defer_wait if self.deferrable else None,
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

    @cached_property
    def _wait(self) -> IntervalWait:
        """The wait for the interval's calls to finish (see :mod:`airflow_voicetrack.waiting.settle`)."""
        return IntervalWait(
            self.hook,
            self._target,
            self.criteria,
            poke_interval=self.poke_interval,
            settle_timeout=self.settle_timeout,
            on_unsettled=self.on_unsettled,
            log=self.log,
        )

    @cached_property
    def _target(self) -> SearchQuery:
        """The interval's search, as the status checks send it."""
        assert self._rendered_interval is not None
        start, end = self._rendered_interval
        return search_query(
            start,
            end,
            filters=rendered_filters(self.filters),
            campaign_tracking_id=self.campaign_tracking_id or None,
            tagged=self.tagged,
        )

    def _extract(
        self, context: Context, strict: bool, waited: float | None
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
            "filters": rendered_filters(self.filters),
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
        summary = extraction_summary(
            result,
            path,
            self.output_format,
            start,
            end,
            seconds=time.monotonic() - started,
            search_stats=self.hook.last_search_stats or {},
            not_terminal=guard.by_status,
            waited_seconds=waited_seconds,
            log=self.log,
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
        return one_object_error(self.output_path, dag)

    def _interval(self, context: Context) -> tuple[pendulum.DateTime, pendulum.DateTime]:
        """The rendered interval, ``empty_interval`` applied (see :mod:`airflow_voicetrack.data_interval`)."""
        return data_interval(
            self.date_start,
            self.date_end,
            empty_interval=self.empty_interval,
            lookback=self.lookback,
            run_after=lambda: context["dag_run"].run_after,
            log=self.log,
        )

    def _personal_data_filter(self) -> PersonalDataFilter:
        """The filter of ``exclude_fields`` and ``hash_fields``, its key read (never logged)."""
        return read_filter(
            self.exclude_fields, self.hash_fields, self.hash_key_conn_id, self.hash_key_variable, self.log
        )

    def _final_path(self, start: pendulum.DateTime, end: pendulum.DateTime) -> ObjectStoragePath:
        assert self.output_path is not None
        return final_path(self.output_path, self.output_conn_id, start, end, self.output_format)

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
            raise AirflowFailException(xcom_cap_message(count, self.xcom_max_records))
        messages = list(
            islice(self.hook.search_messages(start, end, sort=sort, **search), self.xcom_max_records + 1)
        )
        if len(messages) > self.xcom_max_records:
            raise AirflowFailException(xcom_cap_message(len(messages), self.xcom_max_records))
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
