"""Trigger that waits, in the triggerer, until voice messages reach a terminal status."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_voicetrack.exceptions import VoiceTrackTransientError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook
from airflow_voicetrack.status import (
    FAILED_IDS_CAP,
    Evaluation,
    IdsTracker,
    SearchTarget,
    StatusCriteria,
    Verdict,
    evaluate_counts,
    statuses_to_count,
    statuses_to_sample,
)

#: Consecutive transient errors (each after the hook's own retries) before giving up.
MAX_CONSECUTIVE_ERRORS = 3
#: Longest back-off between two attempts after transient errors, in seconds.
MAX_ERROR_BACKOFF = 300.0
#: Relative jitter applied to every sleep, so many waits do not poll in lockstep.
JITTER = 0.1


class VoiceMessageStatusTrigger(BaseTrigger):
    """
    Poll Routee's voice tracking API until the targeted messages are terminal, then fire one event.

    The trigger evaluates the statuses itself with :class:`~airflow_voicetrack.status` rules (the
    same as :class:`~airflow_voicetrack.sensors.voicetrack.VoiceMessageStatusSensor` in poke mode)
    and fires exactly one event:

    - ``{"status": "success", "summary": {...}}`` when every message is terminal;
    - ``{"status": "failure", "message": str, "summary": {...}}`` when failure statuses exceed the
      threshold, or an id is unknown and ``missing="fail"``;
    - ``{"status": "timeout", "message": str, "summary": {...}}`` when ``timeout_at`` passes;
    - ``{"status": "error", "message": str}`` on an error that waiting will not fix, or after
      :data:`MAX_CONSECUTIVE_ERRORS` transient errors in a row.

    Every event also carries ``timeout_at`` (ISO-8601) when it is set, so that the resumed task
    knows its deadline even where the deferral's own kwargs are lost (``dag.test()`` in Airflow 3.3
    drops them).

    It sleeps ``poke_interval`` (with jitter) between evaluations and backs off exponentially after
    transient errors, waiting at least the ``Retry-After`` the server sent with the last one (see
    :attr:`VoiceTrackTransientError.retry_after`), and never past ``timeout_at``. Arguments are
    the already validated values the sensor passes; they hold no secret (the connection is looked
    up by id, asynchronously, in the triggerer).

    :param voicetrack_conn_id: connection id.
    :param message_ids: ids to wait for (ids mode), or ``None`` for search mode.
    :param date_start: search range start, API format, or ``None``.
    :param date_end: search range end (exclusive), API format, or ``None``.
    :param filters: normalized search filters.
    :param campaign_id: campaign tracking id or ``None``.
    :param terminal_statuses: statuses counted as terminal.
    :param failure_statuses: terminal statuses that make the wait fail.
    :param failure_threshold: tolerated share of messages in failure statuses, or ``None``.
    :param missing: ``"fail"`` or ``"wait"`` for unknown ids.
    :param wait_for_messages: in search mode, keep waiting while the search matches nothing.
    :param poke_interval: seconds between evaluations.
    :param timeout_at: when to stop waiting with a ``timeout`` event; ``None`` waits forever.
    :param tagged: search mode: the API's boolean search parameter, or ``None``.
    :param count_only: search mode: count only the pending messages (one request per evaluation);
        the success summary then has ``total`` ``None``. ``VoiceTrackingOperator`` waits with it.
    :param first_check_after: seconds to sleep before the first evaluation (the operator has just
        counted on the worker, so checking again at once would cost a request for nothing).
    """

    def __init__(
        self,
        *,
        voicetrack_conn_id: str,
        message_ids: list[str] | None,
        date_start: str | None,
        date_end: str | None,
        filters: list[dict[str, Any]],
        campaign_id: str | None,
        terminal_statuses: list[str],
        failure_statuses: list[str],
        failure_threshold: float | None,
        missing: str,
        wait_for_messages: bool,
        poke_interval: float,
        timeout_at: datetime | None,
        tagged: bool | None = None,
        count_only: bool = False,
        first_check_after: float = 0.0,
    ) -> None:
        super().__init__()
        self.voicetrack_conn_id = voicetrack_conn_id
        self.message_ids = message_ids
        self.date_start = date_start
        self.date_end = date_end
        self.filters = filters
        self.campaign_id = campaign_id
        self.terminal_statuses = terminal_statuses
        self.failure_statuses = failure_statuses
        self.failure_threshold = failure_threshold
        self.missing = missing
        self.wait_for_messages = wait_for_messages
        self.poke_interval = poke_interval
        self.timeout_at = timeout_at
        self.tagged = tagged
        self.count_only = count_only
        self.first_check_after = first_check_after
        self.criteria = StatusCriteria.build(
            terminal_statuses=terminal_statuses,
            failure_statuses=failure_statuses,
            failure_threshold=failure_threshold,
            missing=missing,
            wait_for_messages=wait_for_messages,
            count_only=count_only,
        )
        self.target = SearchTarget(date_start, date_end, filters, campaign_id, tagged)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and exactly the constructor's keyword arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "voicetrack_conn_id": self.voicetrack_conn_id,
                "message_ids": self.message_ids,
                "date_start": self.date_start,
                "date_end": self.date_end,
                "filters": self.filters,
                "campaign_id": self.campaign_id,
                "terminal_statuses": self.terminal_statuses,
                "failure_statuses": self.failure_statuses,
                "failure_threshold": self.failure_threshold,
                "missing": self.missing,
                "wait_for_messages": self.wait_for_messages,
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "tagged": self.tagged,
                "count_only": self.count_only,
                "first_check_after": self.first_check_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Evaluate until a final outcome, then yield its single event."""
        overrides = self.target.hook_kwargs() if self.message_ids is None else {}
        hook = VoiceTrackAsyncHook(self.voicetrack_conn_id, **overrides)
        try:
            payload = await self._wait(hook)
        finally:
            await hook.close()
        if self.timeout_at is not None:
            payload["timeout_at"] = self.timeout_at.isoformat()
        yield TriggerEvent(payload)

    async def _wait(self, hook: VoiceTrackAsyncHook) -> dict[str, Any]:
        tracker = IdsTracker(self.message_ids, self.criteria) if self.message_ids is not None else None
        errors = 0
        if self.first_check_after > 0 and not await self._sleep(self.first_check_after):
            return self._timeout_payload(None, "timed out before the first check")
        while True:
            try:
                if tracker is not None:
                    pending_ids = tracker.pending_ids()
                    fetched = await hook.get_messages(pending_ids, missing_ok=True) if pending_ids else {}
                    evaluation = tracker.evaluate(fetched)
                else:
                    evaluation = await self._evaluate_search(hook)
            except VoiceTrackTransientError as err:
                errors += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    return {
                        "status": "error",
                        "message": f"{errors} transient errors in a row, last: {type(err).__name__}: {err}",
                    }
                delay = min(self.poke_interval * 2**errors, MAX_ERROR_BACKOFF)
                # The server's Retry-After (when the last failure carried one) is a floor.
                floor = err.retry_after or 0.0
                self.log.warning(
                    "Transient error (%s), retrying in about %.0f s: %s", errors, max(delay, floor), err
                )
                if not await self._sleep(delay, minimum=floor):
                    return self._timeout_payload(None, f"last attempt failed: {err}")
                continue
            except Exception as err:
                return {"status": "error", "message": f"{type(err).__name__}: {err}"}
            errors = 0
            if evaluation.verdict is Verdict.DONE:
                self.log.info("%s", evaluation.message)
                return {"status": "success", "summary": evaluation.summary}
            if evaluation.verdict is Verdict.FAILED:
                return {"status": "failure", "message": evaluation.message, "summary": evaluation.summary}
            self.log.info("%s", evaluation.message)
            if not await self._sleep(self.poke_interval):
                return self._timeout_payload(evaluation, evaluation.message)

    async def _evaluate_search(self, hook: VoiceTrackAsyncHook) -> Evaluation:
        """Count pending messages, per status only when needed, and sample failed ids when final."""
        target, criteria = self.target, self.criteria

        async def count(filters: list[dict[str, Any]]) -> int:
            return await hook.count_messages(**target.count_kwargs(filters))

        pending = await count(target.pending_filters(criteria.terminal_statuses))
        to_count = statuses_to_count(criteria, pending)
        counts = (
            {status: await count(target.status_filters(status)) for status in to_count} if to_count else None
        )
        evaluation = evaluate_counts(criteria, pending=pending, counts=counts)
        to_sample = statuses_to_sample(criteria, evaluation)
        if not to_sample:
            return evaluation
        failed_ids: dict[str, list[str]] = {}
        for status in to_sample:
            # One request: a page of FAILED_IDS_CAP and limit=FAILED_IDS_CAP read nothing ahead.
            messages = hook.search_messages(
                **target.count_kwargs(target.status_filters(status)),
                page_size=FAILED_IDS_CAP,
                limit=FAILED_IDS_CAP,
            )
            async with aclosing(messages):
                failed_ids[status] = [message["messageId"] async for message in messages]
        return evaluate_counts(criteria, pending=pending, counts=counts, failed_ids=failed_ids)

    async def _sleep(self, seconds: float, *, minimum: float = 0.0) -> bool:
        """
        Sleep ``seconds`` with jitter, at least ``minimum`` (e.g. a server's ``Retry-After``), never
        past ``timeout_at``; return False if it has passed.
        """
        delay = max(seconds * random.uniform(1 - JITTER, 1 + JITTER), minimum)
        if self.timeout_at is not None:
            remaining = self.timeout_at.timestamp() - time.time()
            if remaining <= 0:
                return False
            delay = min(delay, remaining)
        await asyncio.sleep(delay)
        return True

    def _timeout_payload(self, evaluation: Evaluation | None, detail: str) -> dict[str, Any]:
        return {
            "status": "timeout",
            "message": f"Timed out at {self.timeout_at} waiting for voice messages: {detail}",
            "summary": evaluation.summary if evaluation is not None else None,
        }
