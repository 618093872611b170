"""The operator's wait for final statuses, before and between its extractions; its check of what it writes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_voicetrack.protocol import (
    SearchQuery,
    count_flow,
    first_ids_flow,
)
from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.waiting.criteria import Evaluation, StatusCriteria, message_id_of, status_of
from airflow_voicetrack.waiting.poke import poke_flow
from airflow_voicetrack.waiting.queries import pending_query, status_query

if TYPE_CHECKING:
    from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

T = TypeVar("T")

#: Example ids of unfinished messages named in the error when the operator's wait gives up.
UNSETTLED_EXAMPLES = 5


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
