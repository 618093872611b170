"""
What done and failed mean for a wait: the criteria, the evaluation of counts, the ids a wait tracks.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from airflow_voicetrack.constants import ALL_STATUSES, DEFAULT_TERMINAL_STATUSES, STATUS_PROGRESSION
from airflow_voicetrack.protocol import (
    RawMessage,
)

_STATUS_ORDER = [*STATUS_PROGRESSION, *sorted(ALL_STATUSES - set(STATUS_PROGRESSION))]
#: Largest number of example ids kept per failure status (and of missing ids) in a summary.
FAILED_IDS_CAP = 20
#: Accepted values of ``missing``: what to do when a message id is unknown (404).
MISSING_MODES: tuple[str, ...] = ("fail", "wait")


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


def to_kwargs(value: StatusCriteria) -> dict[str, Any]:
    """
    Return criteria as plain keyword arguments (sets as sorted lists).

    What a trigger serializes: ``StatusCriteria.build(**to_kwargs(value))`` is ``value`` again.
    """
    return {
        item.name: sorted(attr) if isinstance(attr := getattr(value, item.name), frozenset) else attr
        for item in fields(value)
    }
