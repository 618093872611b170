"""The operator's wait for final statuses, before and between its extractions; its check of what it writes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk.exceptions import AirflowException

from airflow_voicetrack.protocol import (
    SearchQuery,
    count_flow,
    first_ids_flow,
)
from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.waiting.criteria import Evaluation, StatusCriteria, message_id_of, status_of
from airflow_voicetrack.waiting.events import WaitEvent
from airflow_voicetrack.waiting.poke import poke_flow
from airflow_voicetrack.waiting.queries import pending_query, status_query

if TYPE_CHECKING:
    from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

T = TypeVar("T")

#: Example ids of unfinished messages named in the error when the operator's wait gives up.
UNSETTLED_EXAMPLES = 5
#: Accepted values of ``on_unsettled``.
ON_UNSETTLED: tuple[str, ...] = ("fail", "write")


def check_settle_arguments(
    poke_interval: float | timedelta, settle_timeout: float | timedelta, on_unsettled: str
) -> tuple[float, float, str]:
    """
    Validate the operator's wait arguments.

    :return: ``poke_interval`` and ``settle_timeout`` in seconds, and ``on_unsettled``.
    :raises ValueError: naming the argument and the fix.
    """
    poke_seconds = _seconds(poke_interval, "poke_interval")
    settle_seconds = _seconds(settle_timeout, "settle_timeout")
    if settle_seconds < poke_seconds:
        raise ValueError(
            f"settle_timeout ({settle_seconds:g} s) is shorter than poke_interval "
            f"({poke_seconds:g} s), so the wait could not check even once; raise "
            "settle_timeout or lower poke_interval."
        )
    if on_unsettled not in ON_UNSETTLED:
        raise ValueError(
            f"on_unsettled must be one of {', '.join(map(repr, ON_UNSETTLED))}, got {on_unsettled!r}"
        )
    return poke_seconds, settle_seconds, on_unsettled


def _seconds(value: Any, name: str) -> float:
    """A positive duration given as seconds or a ``timedelta``, in seconds."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


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


@dataclass
class IntervalWait:
    """
    The operator's wait for final statuses, before and between its extractions.

    It waits until no message of the interval is pending, then extracts; it waits and extracts
    again when the extraction reads a message that is not terminal; all within ``settle_timeout``,
    after which it applies ``on_unsettled``.

    Each check is one count (:func:`evaluate_search` with count-only criteria). The operator supplies
    what only it can do: extract, and defer to the triggerer.

    :param hook: the sync hook the checks run on.
    :param target: the interval's search.
    :param criteria: count-only criteria (the terminal statuses).
    :param poke_interval: seconds between checks.
    :param settle_timeout: seconds the whole wait may take.
    :param on_unsettled: ``"fail"`` or ``"write"`` when ``settle_timeout`` passes with calls unfinished.
    :param log: the operator's logger.
    """

    hook: VoiceTrackHook
    target: SearchQuery
    criteria: StatusCriteria
    _: KW_ONLY
    poke_interval: float
    settle_timeout: float
    on_unsettled: str
    log: Log

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
        """
        deadline = started + self.settle_timeout
        while True:
            while pending:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return self.give_up(started, pending, extract)
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

    def resume(
        self,
        payload: Mapping[str, Any],
        *,
        checks: int,
        check: Callable[[int, float], int],
        extract: Callable[[bool, float | None], T],
        defer: Callable[[int, float], None] | None,
    ) -> T:
        """
        Go on after the trigger's event (a :class:`WaitEvent`'s payload): extract, or give up.

        The wait's start is the deadline the trigger echoes back, less ``settle_timeout``.

        :param checks: checks made before deferring (for the log's numbering).
        :raises AirflowException: the trigger hit an error that waiting does not fix.
        """
        event = WaitEvent.decode(payload)
        if event.status not in ("success", "timeout") or event.timeout_at is None:
            raise AirflowException(f"Waiting for the interval's calls failed: {event.message or payload}")
        started = datetime.fromisoformat(event.timeout_at).timestamp() - self.settle_timeout
        if event.status == "success":
            return self.settle(
                started=started,
                pending=0,
                checks=checks,
                waited=True,
                check=check,
                extract=extract,
                defer=defer,
            )
        return self.give_up(started, (event.summary or {}).get("pending"), extract)

    def give_up(self, started: float, pending: int | None, extract: Callable[[bool, float | None], T]) -> T:
        """
        Apply ``on_unsettled`` once ``settle_timeout`` has passed with ``pending`` calls unfinished.

        :raises AirflowException: with ``"fail"``, naming the unfinished calls by status.
        """
        if self.on_unsettled == "write":
            self.log.warning(
                "%s messages of the interval are still not terminal after settle_timeout=%s; writing "
                "them as they are (on_unsettled='write').",
                "Some" if pending is None else pending,
                timedelta(seconds=self.settle_timeout),
            )
            return extract(False, started)
        by_status, example_ids = self.unsettled()
        if not any(by_status.values()):
            # Finished between the last check and now: nothing is left to wait for.
            return extract(True, started)
        raise AirflowException(
            unsettled_message(by_status, example_ids, settle_timeout=timedelta(seconds=self.settle_timeout))
        )

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
