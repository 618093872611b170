"""
Waiting for final statuses: the one module for the sensor, the triggers and the operator's wait.

- what done and failed mean (:class:`StatusCriteria`, :class:`Evaluation`, :class:`IdsTracker`);
- the search a wait sends (a :class:`~airflow_voicetrack.protocol.SearchQuery`, with
  :func:`pending_query` and :func:`status_query`; :func:`encode_query`/:func:`decode_query` are how
  a trigger serializes it);
- the flows: :func:`poke_flow` (one poke, run by the sensor with the sync hook and by the trigger
  with the async hook, so the two cannot drift), :func:`settled_flow` and
  :func:`settled_windows_flow` (the event trigger);
- the status trigger's event (:class:`WaitEvent`: one encode, one decode);
- the operator's wait (:class:`IntervalWait`) and its check of what it writes (:class:`StatusGuard`).

Summary pushed to XCom (``by_status`` holds every terminal status, ``failed_ids`` every failure
status; ids are capped at :data:`FAILED_IDS_CAP` per status)::

    {"total": 120, "pending": 0, "by_status": {"Completed": 100, "Failed": 20, ...},
     "failed_ids": {"Failed": ["id-1", ...]}}

In ids mode a summary also has ``missing_ids`` when some ids were not found (404).

Count-only criteria (``StatusCriteria.build(count_only=True)``, what ``VoiceTrackingOperator``
waits with) count only the pending messages, one request per poke: the summary's ``total`` is then
``None`` and ``by_status`` all zeros.
"""

from __future__ import annotations

import ast
import enum
import json
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pendulum

from airflow_voicetrack.constants import ALL_STATUSES, DEFAULT_TERMINAL_STATUSES, STATUS_PROGRESSION
from airflow_voicetrack.protocol import (
    Flow,
    RawMessage,
    SearchQuery,
    Settings,
    count_flow,
    first_ids_flow,
    format_datetime,
    messages_flow,
)
from airflow_voicetrack.protocol.calls import Log

if TYPE_CHECKING:
    from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

T = TypeVar("T")

_STATUS_ORDER = [*STATUS_PROGRESSION, *sorted(ALL_STATUSES - set(STATUS_PROGRESSION))]
#: Largest number of example ids kept per failure status (and of missing ids) in a summary.
FAILED_IDS_CAP = 20
#: Example ids of unfinished messages named in the error when the operator's wait gives up.
UNSETTLED_EXAMPLES = 5
#: Accepted values of ``missing``: what to do when a message id is unknown (404).
MISSING_MODES: tuple[str, ...] = ("fail", "wait")
STATUS_FIELD = "status.status"


class Verdict(str, enum.Enum):
    """Outcome of one evaluation."""

    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class StatusCriteria:
    """
    What "done" and "failed" mean for a wait; build it with :meth:`build`, which validates.

    :param terminal_statuses: statuses after which a message is not expected to change.
    :param failure_statuses: terminal statuses that make the wait fail.
    :param failure_threshold: fail only when the share of messages in failure statuses exceeds
        this fraction; ``None`` fails on the first one.
    :param missing: ``"fail"`` or ``"wait"`` when a message id is unknown (404).
    :param wait_for_messages: in search mode, keep waiting while the search matches nothing.
    :param count_only: in search mode, count only the pending messages, never the terminal
        statuses: one request per poke, done when none is pending.
    """

    terminal_statuses: frozenset[str]
    failure_statuses: frozenset[str]
    failure_threshold: float | None
    missing: str
    wait_for_messages: bool
    count_only: bool = False

    @classmethod
    def build(
        cls,
        *,
        terminal_statuses: Iterable[str] | None = None,
        failure_statuses: Iterable[str] | None = None,
        failure_threshold: float | None = None,
        missing: str = "fail",
        wait_for_messages: bool = False,
        count_only: bool = False,
    ) -> StatusCriteria:
        """
        Validate the arguments and build the criteria.

        :raises ValueError: naming the bad parameter and how to fix it.
        """
        terminal = (
            DEFAULT_TERMINAL_STATUSES
            if terminal_statuses is None
            else _status_set("terminal_statuses", terminal_statuses)
        )
        if not terminal:
            raise ValueError("terminal_statuses must not be empty; omit it to use the default set.")
        failure = (
            frozenset() if failure_statuses is None else _status_set("failure_statuses", failure_statuses)
        )
        if not failure <= terminal:
            raise ValueError(
                f"failure_statuses {sorted(failure - terminal)} are not terminal statuses; a message "
                f"never ends in them. Add them to terminal_statuses or remove them. "
                f"Terminal statuses: {sorted(terminal)}."
            )
        if failure_threshold is not None:
            if not failure:
                raise ValueError("failure_threshold needs failure_statuses; set both or neither.")
            if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, (int, float)):
                raise ValueError(f"failure_threshold must be a number in [0, 1), got {failure_threshold!r}.")
            if not 0 <= failure_threshold < 1:
                raise ValueError(
                    f"failure_threshold must be in [0, 1) (a share of the messages), got "
                    f"{failure_threshold!r}; e.g. 0.05 fails when more than 5% of the messages fail."
                )
        if missing not in MISSING_MODES:
            raise ValueError(f"missing must be one of {list(MISSING_MODES)}, got {missing!r}.")
        if count_only and (failure or wait_for_messages):
            raise ValueError(
                "count_only counts pending messages only; it cannot apply failure_statuses or "
                "wait_for_messages, which need the per-status counts."
            )
        return cls(terminal, failure, failure_threshold, missing, bool(wait_for_messages), bool(count_only))

    @property
    def pending_statuses(self) -> list[str]:
        """The statuses that are not terminal, in API order (the intermediate ones first)."""
        return sorted(ALL_STATUSES - self.terminal_statuses, key=_STATUS_ORDER.index)


def _status_set(name: str, statuses: Iterable[str]) -> frozenset[str]:
    if isinstance(statuses, str):
        raise ValueError(f"{name} must be a collection of status names, e.g. [{statuses!r}], not a string.")
    result = frozenset(statuses)
    unknown = sorted(str(status) for status in result - ALL_STATUSES)
    if unknown:
        raise ValueError(f"{name} has unknown statuses {unknown}; accepted: {sorted(ALL_STATUSES)}.")
    return result


def resolve_message_ids(value: Any) -> list[str]:
    """
    Validate rendered ``message_ids``; return them without duplicates, in their order.

    Accepted: a list or tuple of ids; a string holding a list, as JSON (``| tojson``) or as the
    Python literal a plain ``{{ ti.xcom_pull(...) }}`` renders to; any other string is one id.

    :raises ValueError: naming ``message_ids`` and the value's problem.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    raise ValueError(f"message_ids is not a JSON or Python list: {text[:100]!r}") from None
        else:
            value = [text]
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"message_ids must be a list of ids (or a string of one), got {type(value).__name__}."
        )
    bad = [item for item in value if not isinstance(item, str) or not item.strip()]
    if bad:
        raise ValueError(f"message_ids must hold non-empty strings; invalid items: {bad[:5]!r}.")
    return list(dict.fromkeys(item.strip() for item in value))


def search_query(
    *,
    date_start: Any = None,
    date_end: Any = None,
    filters: Sequence[Any] | None = None,
    campaign_tracking_id: str | None = None,
    tagged: bool | None = None,
) -> SearchQuery:
    """
    Validate the rendered arguments of a wait's search before any request.

    :return: the search, over its whole range (a poke never splits it into windows), a page of one.
    :raises ValueError: naming the bad parameter.
    """
    return SearchQuery.build(
        date_start,
        date_end,
        filters=filters,
        campaign_tracking_id=campaign_tracking_id,
        tagged=tagged,
        page_size=1,
        require_range=False,
    )


def encode_query(query: SearchQuery) -> dict[str, Any]:
    """
    Return the search as a trigger serializes it: what :func:`decode_query` reads.

    The keys and text forms are those of every earlier version, dates in the API's format.
    """
    return {
        "date_start": None if query.date_start is None else format_datetime(query.date_start),
        "date_end": None if query.date_end is None else format_datetime(query.date_end),
        "filters": query.filters,
        "campaign_tracking_id": query.campaign_tracking_id,
        "tagged": query.tagged,
    }


def decode_query(kwargs: Mapping[str, Any]) -> SearchQuery:
    """
    Rebuild a search from :func:`encode_query`.

    Also as serialized before ``campaign_id`` became ``campaign_tracking_id``: a trigger deferred
    before an upgrade still runs.
    """
    values = dict(kwargs)
    if "campaign_id" in values:
        values["campaign_tracking_id"] = values.pop("campaign_id")
    return search_query(**values)


def pending_query(query: SearchQuery, terminal_statuses: Iterable[str]) -> SearchQuery:
    """The search AND one ``status.status is_not`` filter per terminal status: what is not final."""
    pending = [
        {"fieldName": STATUS_FIELD, "searchOperator": "is_not", "searchTerm": status}
        for status in sorted(terminal_statuses)
    ]
    return replace(query, filters=[*query.filters, *pending])


def status_query(query: SearchQuery, status: str) -> SearchQuery:
    """The search AND ``status.status is status``."""
    return replace(
        query,
        filters=[*query.filters, {"fieldName": STATUS_FIELD, "searchOperator": "is", "searchTerm": status}],
    )


def status_of(message: Mapping[str, Any] | RawMessage) -> str | None:
    """The status name of a voice message (a dict or a raw one), or ``None`` when the API sent none."""
    if isinstance(message, RawMessage):
        return message.status
    status = message.get("status")
    return status.get("status") if isinstance(status, Mapping) else None


def message_id_of(message: Mapping[str, Any] | RawMessage) -> Any:
    """The ``messageId`` of a voice message (a dict or a raw one)."""
    return message.message_id if isinstance(message, RawMessage) else message.get("messageId")


def statuses_to_count(criteria: StatusCriteria, pending: int) -> list[str]:
    """
    Statuses a search-mode poke counts after counting the ``pending`` (non-terminal) messages.

    Nothing while messages are pending and no failure status can fail the wait early; otherwise
    every terminal status, for the summary and the failure share.
    """
    if criteria.count_only or (pending and not criteria.failure_statuses):
        return []
    return sorted(criteria.terminal_statuses)


def statuses_to_sample(criteria: StatusCriteria, evaluation: Evaluation) -> list[str]:
    """
    Return the failure statuses whose example ids a search-mode poke fetches (one request each).

    Only on a final verdict, and only the statuses that have messages.
    """
    if evaluation.verdict is Verdict.WAITING:
        return []
    by_status = evaluation.summary["by_status"]
    return [status for status in sorted(criteria.failure_statuses) if by_status.get(status)]


@dataclass(frozen=True)
class Evaluation:
    """
    The verdict of one evaluation and its summary (the XCom value when done).

    :param verdict: waiting, done or failed.
    :param summary: counts and example ids, see the module docstring.
    :param message: a one-line, human-readable explanation (used for logs and exceptions).
    """

    verdict: Verdict
    summary: dict[str, Any]
    message: str

    @property
    def done(self) -> bool:
        """Every targeted message is terminal, and not too many failed."""
        return self.verdict is Verdict.DONE

    @property
    def failed(self) -> bool:
        """The failure threshold is crossed, or an awaited message is missing (``missing='fail'``)."""
        return self.verdict is Verdict.FAILED


def evaluate_counts(
    criteria: StatusCriteria,
    *,
    pending: int,
    counts: Mapping[str, int] | None,
    failed_ids: Mapping[str, Sequence[str]] | None = None,
) -> Evaluation:
    """
    Evaluate ``pending`` messages not terminal and ``counts`` per terminal status.

    ``counts`` is ``None`` when a poke did not count the terminal statuses (see
    :func:`statuses_to_count`); the summary's ``total`` is then ``None`` too.
    """
    by_status = {status: int((counts or {}).get(status, 0)) for status in sorted(criteria.terminal_statuses)}
    summary = {
        "total": None if counts is None else pending + sum(by_status.values()),
        "pending": pending,
        "by_status": by_status,
        "failed_ids": {
            status: list((failed_ids or {}).get(status, ()))[:FAILED_IDS_CAP]
            for status in sorted(criteria.failure_statuses)
        },
    }
    return _decide(criteria, summary)


class IdsTracker:
    """
    The progress of a wait on explicit message ids.

    It remembers which ids reached a terminal status (they never leave it), so that a poke
    re-checks only :meth:`pending_ids`.

    :param message_ids: the validated ids (see :func:`resolve_message_ids`).
    :param criteria: what done and failed mean.
    """

    def __init__(self, message_ids: Sequence[str], criteria: StatusCriteria) -> None:
        self.message_ids = list(message_ids)
        self.criteria = criteria
        self.terminal: dict[str, str] = {}

    def pending_ids(self) -> list[str]:
        """The ids not yet known to be terminal, in their original order."""
        return [message_id for message_id in self.message_ids if message_id not in self.terminal]

    def evaluate(self, fetched: Mapping[str, Mapping[str, Any] | None]) -> Evaluation:
        """
        Record freshly fetched messages (``None`` for an unknown id) and evaluate every id.

        :param fetched: what ``get_messages(pending_ids, missing_ok=True)`` returned.
        """
        missing = [message_id for message_id, message in fetched.items() if message is None]
        for message_id, message in fetched.items():
            status = status_of(message) if message is not None else None
            if status in self.criteria.terminal_statuses:
                self.terminal[message_id] = status
        counts: dict[str, int] = {}
        failed_ids: dict[str, list[str]] = {status: [] for status in self.criteria.failure_statuses}
        for message_id in self.message_ids:
            if (status := self.terminal.get(message_id)) is not None:
                counts[status] = counts.get(status, 0) + 1
                if status in failed_ids:
                    failed_ids[status].append(message_id)
        pending = len(self.message_ids) - len(self.terminal)
        evaluation = evaluate_counts(self.criteria, pending=pending, counts=counts, failed_ids=failed_ids)
        if not missing:
            return evaluation
        evaluation.summary["missing_ids"] = missing[:FAILED_IDS_CAP]
        if self.criteria.missing == "wait" or evaluation.verdict is Verdict.FAILED:
            return evaluation
        explanation = (
            f"{len(missing)} of {len(self.message_ids)} message ids are unknown to the API (404), e.g. "
            f"{missing[:5]}. Check the ids, or pass missing='wait' to keep waiting for them."
        )
        return Evaluation(Verdict.FAILED, evaluation.summary, explanation)


def _decide(criteria: StatusCriteria, summary: dict[str, Any]) -> Evaluation:
    total, pending = summary["total"], summary["pending"]
    failed = {status: summary["by_status"][status] for status in sorted(criteria.failure_statuses)}
    failed = {status: count for status, count in failed.items() if count}
    threshold = criteria.failure_threshold or 0.0
    # Messages never leave a terminal status, so once the failed share exceeds the threshold
    # the wait is bound to fail: fail now rather than after every message has finished.
    if total and sum(failed.values()) > threshold * total:
        examples = {status: summary["failed_ids"][status][:5] for status in failed}
        limit = "" if criteria.failure_threshold is None else f" (more than {threshold:.1%} allowed)"
        still = f" ({pending} still pending)" if pending else ""
        message = (
            f"{sum(failed.values())} of {total} messages{still} ended in failure statuses{limit}: "
            f"{failed}; example ids: {examples}."
        )
        return Evaluation(Verdict.FAILED, summary, message)
    if pending:
        return Evaluation(Verdict.WAITING, summary, f"{pending} messages are not in a terminal status yet.")
    if not total and criteria.wait_for_messages:
        return Evaluation(Verdict.WAITING, summary, "No message matches yet (wait_for_messages=True).")
    if total is None:
        return Evaluation(Verdict.DONE, summary, "Every message is in a terminal status.")
    done = {status: count for status, count in summary["by_status"].items() if count}
    return Evaluation(Verdict.DONE, summary, f"All {total} messages are in a terminal status: {done}.")


def unsettled_message(
    pending_by_status: Mapping[str, int], example_ids: Sequence[str], *, settle_timeout: timedelta
) -> str:
    """
    Explain why an extraction gave up waiting.

    How many messages are unfinished, by status, with example ids, and which arguments change the
    outcome.

    :param pending_by_status: count of each non-terminal status (zeros are left out).
    :param example_ids: a few ids of unfinished messages.
    :param settle_timeout: how long the extraction waited.
    """
    counts = {status: count for status, count in pending_by_status.items() if count}
    return (
        f"{sum(counts.values())} messages of the interval were still not in a terminal status after "
        f"settle_timeout={settle_timeout}: {counts}; example ids: {list(example_ids)}. Raise "
        "settle_timeout to wait longer, pass on_unsettled='write' to write them as they are "
        "(counted in the summary's non_terminal), wait_for_terminal=False for a snapshot, or add a "
        "status that never changes for your account to terminal_statuses."
    )


#: How a wait ended: every message final, failures past the threshold, ``timeout_at`` passed, or an
#: error that waiting does not fix.
WaitOutcome = Literal["success", "failure", "timeout", "error"]
_OUTCOMES: tuple[str, ...] = ("success", "failure", "timeout", "error")


@dataclass(frozen=True)
class WaitEvent:
    """
    The one event :class:`~airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger` fires.

    :meth:`encode` writes the trigger's payload, :meth:`decode` reads it back in the resumed task
    (the sensor's and the operator's ``execute_complete``), events of earlier versions included.

    :param status: how the wait ended.
    :param message: what happened (failure, timeout, error).
    :param summary: the last evaluation's summary (success, failure; timeout when there was one).
    :param timeout_at: the deadline, ISO-8601, when the wait had one: the resumed task's deadline
        even where the deferral's own kwargs are lost (``dag.test()`` in Airflow 3.3 drops them).
    """

    status: WaitOutcome
    message: str | None = None
    summary: dict[str, Any] | None = None
    timeout_at: str | None = None

    def encode(self) -> dict[str, Any]:
        """:return: the trigger event's payload, keyed as in every earlier version."""
        payload: dict[str, Any] = {"status": self.status}
        if self.status != "success":
            payload["message"] = self.message
        if self.status != "error":
            payload["summary"] = self.summary
        if self.timeout_at is not None:
            payload["timeout_at"] = self.timeout_at
        return payload

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> WaitEvent:
        """:return: the event of ``payload``; one with an unknown status is an ``error`` naming it."""
        status = payload.get("status")
        if status not in _OUTCOMES:
            return cls("error", message=str(payload.get("message", dict(payload))))
        return cls(
            status,
            message=payload.get("message"),
            summary=payload.get("summary"),
            timeout_at=payload.get("timeout_at"),
        )


def to_kwargs(value: StatusCriteria) -> dict[str, Any]:
    """
    Return criteria as plain keyword arguments (sets as sorted lists).

    What a trigger serializes: ``StatusCriteria.build(**to_kwargs(value))`` is ``value`` again.
    """
    return {
        item.name: sorted(attr) if isinstance(attr := getattr(value, item.name), frozenset) else attr
        for item in fields(value)
    }


def poke_flow(
    settings: Settings,
    criteria: StatusCriteria,
    *,
    target: SearchQuery | None = None,
    tracker: IdsTracker | None = None,
    log: Log | None = None,
) -> Flow[Evaluation]:
    """
    One poke of a wait, as a protocol flow that the sensor (sync hook) and the trigger (async hook) run.

    Ids mode (``tracker``): fetch the ids not yet terminal, concurrently, and evaluate every id.
    Search mode (``target``): count the messages not yet terminal (one request); then, only when
    needed (see :func:`statuses_to_count`), one count per terminal status; then, on a final verdict
    with failures, one page of example ids per failure status (see :func:`statuses_to_sample`).

    With count-only criteria (``StatusCriteria.count_only``) a search-mode poke is the pending count
    alone: one request.

    :return: a flow whose value is the poke's :class:`Evaluation`.
    """
    if tracker is not None:
        fetched = yield from messages_flow(settings, tracker.pending_ids(), missing_ok=True, log=log)
        return tracker.evaluate(fetched)
    if target is None:
        raise ValueError("poke_flow needs a target (search mode) or a tracker (ids mode)")
    pending = yield from count_flow(settings, pending_query(target, criteria.terminal_statuses), log)
    to_count = statuses_to_count(criteria, pending)
    counts: dict[str, int] = {}
    for status in to_count:
        counts[status] = yield from count_flow(settings, status_query(target, status), log)
    counted = counts if to_count else None
    evaluation = evaluate_counts(criteria, pending=pending, counts=counted)
    to_sample = statuses_to_sample(criteria, evaluation)
    if not to_sample:
        return evaluation
    failed_ids = {}
    for status in to_sample:
        # One request: page 0 of FAILED_IDS_CAP messages over the whole range.
        query = replace(status_query(target, status), page_size=FAILED_IDS_CAP)
        failed_ids[status] = yield from first_ids_flow(settings, query, log)
    return evaluate_counts(criteria, pending=pending, counts=counted, failed_ids=failed_ids)


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


class NotTerminalError(Exception):
    """A message read for a strict extraction is not terminal (see :class:`StatusGuard`)."""


class StatusGuard:
    """
    Check the status of every message on its way to the writer.

    :param terminal_statuses: statuses that count as terminal.
    :param strict: raise :class:`NotTerminalError` on the first message that is not terminal (so an
        atomic write leaves nothing behind); otherwise count them in :attr:`non_terminal`.
    """

    def __init__(self, terminal_statuses: Collection[str], *, strict: bool) -> None:
        self.terminal_statuses = terminal_statuses
        self.strict = strict
        self.by_status: Counter[str | None] = Counter()

    @property
    def non_terminal(self) -> int:
        """Messages seen so far whose status is not terminal."""
        return sum(self.by_status.values())

    def check(self, messages: Iterable[Any]) -> Iterator[Any]:
        """Yield ``messages`` unchanged, checking each one's status."""
        terminal = self.terminal_statuses
        for message in messages:
            status = status_of(message)
            if status not in terminal:
                if self.strict:
                    raise NotTerminalError(
                        f"Message {message_id_of(message)} read for the extraction is {status}, not terminal."
                    )
                self.by_status[status] += 1
            yield message


def evaluate_search(hook: VoiceTrackHook, target: SearchQuery, criteria: StatusCriteria) -> Evaluation:
    """
    Run one search-mode poke (:func:`~airflow_voicetrack.waiting.poke_flow`) with the sync hook.

    What ``VoiceTrackingOperator`` waits with; the trigger runs the same flow with the async hook.
    """
    return hook.run_flow(poke_flow(hook.settings, criteria, target=target, log=hook.log))


class IntervalWait:
    """
    The operator's wait for final statuses, before and between its extractions.

    It waits until no message of the interval is pending, then extracts; it waits and extracts
    again when the extraction reads a message that is not terminal; all within ``settle_timeout``.

    Each check is one count (:func:`evaluate_search` with count-only criteria). The operator supplies
    what only it can do: extract, defer to the triggerer, and apply ``on_unsettled``.

    :param hook: the sync hook the checks run on.
    :param target: the interval's search.
    :param criteria: count-only criteria (the terminal statuses).
    :param poke_interval: seconds between checks.
    :param settle_timeout: seconds the whole wait may take.
    :param log: the operator's logger.
    """

    def __init__(
        self,
        hook: VoiceTrackHook,
        target: SearchQuery,
        criteria: StatusCriteria,
        *,
        poke_interval: float,
        settle_timeout: float,
        log: Log,
    ) -> None:
        self.hook = hook
        self.target = target
        self.criteria = criteria
        self.poke_interval = poke_interval
        self.settle_timeout = settle_timeout
        self.log = log

    def settle(
        self,
        *,
        started: float,
        pending: int,
        checks: int,
        waited: bool,
        check: Callable[[int, float], int],
        extract: Callable[[bool, float | None], T],
        defer: Callable[[int, float], None] | None,
        unsettled: Callable[[int], T],
    ) -> T:
        """
        Wait until ``pending`` is 0, then extract; wait and extract again on a message not terminal.

        :param started: wall-clock time the wait started (``settle_timeout`` counts from it).
        :param pending: the last check's count.
        :param checks: checks made so far (for the log's numbering).
        :param waited: whether the wait already had to wait (the extraction says so).
        :param check: makes check number ``n`` before the deadline: :meth:`check`, or the operator's.
        :param extract: extracts, ``strict`` or not, saying since when it waited (``None``: no wait).
        :param defer: hands the wait to the triggerer (it does not return); ``None`` waits here.
        :param unsettled: what to do when ``settle_timeout`` passes with ``pending`` messages.
        """
        deadline = started + self.settle_timeout
        while True:
            while pending:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return unsettled(pending)
                if defer is not None:
                    defer(checks, deadline)
                time.sleep(min(self.poke_interval, remaining))
                checks += 1
                pending = check(checks, deadline)
            try:
                return extract(True, started if waited else None)
            except NotTerminalError as err:
                self.log.warning("%s Nothing was written; waiting, then extracting again.", err)
            waited = True
            checks += 1
            # At least one poke_interval before the next read, even when the count already says 0:
            # a count that disagrees with the read must not turn into a loop of extractions.
            pending = max(check(checks, deadline), 1)

    def check(self, number: int, deadline: float | None = None) -> int:
        """Count the interval's messages that are not terminal (one request); log one line."""
        pending = evaluate_search(self.hook, self.target, self.criteria).summary["pending"]
        left = (
            "" if deadline is None else f", {max(0.0, deadline - time.time()):.0f} s left of settle_timeout"
        )
        self.log.info(
            "Check %d: %d messages of the interval are not in a terminal status%s", number, pending, left
        )
        return int(pending)

    def unsettled(self) -> tuple[dict[str, int], list[str]]:
        """
        Describe what is left when the wait gives up: one request per pending status, one for examples.

        :return: the pending messages' counts by status, and up to :data:`UNSETTLED_EXAMPLES` of their ids.

        A request per pending status and one for the examples: spent once, when the wait gave up.
        """
        hook, settings, target = self.hook, self.hook.settings, self.target
        by_status = {
            status: hook.run_flow(count_flow(settings, status_query(target, status), self.log))
            for status in self.criteria.pending_statuses
        }
        pending = replace(
            pending_query(target, self.criteria.terminal_statuses), page_size=UNSETTLED_EXAMPLES
        )
        return by_status, hook.run_flow(first_ids_flow(settings, pending, self.log))
