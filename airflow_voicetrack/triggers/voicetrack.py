"""Trigger that waits, in the triggerer, until voice messages reach a terminal status."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_voicetrack.exceptions import VoiceTrackTransientError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook
from airflow_voicetrack.status import IdsTracker, SearchTarget, StatusCriteria, poke_flow, to_kwargs

if TYPE_CHECKING:
    from airflow_voicetrack.status import Evaluation

#: The flat arguments of earlier serialized forms (0.1.0 and after) that now live in ``target`` and
#: ``criteria``.
_LEGACY_TARGET = frozenset({"date_start", "date_end", "filters", "campaign_id", "tagged"})
_LEGACY_CRITERIA = frozenset(
    {
        "terminal_statuses",
        "failure_statuses",
        "failure_threshold",
        "missing",
        "wait_for_messages",
        "count_only",
    }
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
    :param target: search mode: the validated search (a :class:`SearchTarget` or its keyword
        arguments, see :func:`~airflow_voicetrack.status.to_kwargs`); ``None`` in ids mode.
    :param criteria: what done and failed mean (a :class:`StatusCriteria` or its keyword arguments).
    :param poke_interval: seconds between evaluations.
    :param timeout_at: when to stop waiting with a ``timeout`` event; ``None`` waits forever.
    :param first_check_after: seconds to sleep before the first evaluation (the operator has just
        counted on the worker, so checking again at once would cost a request for nothing).
    :param legacy: the flat arguments of earlier versions (``date_start``, ``date_end``,
        ``filters``, ``campaign_id``, ``tagged``, ``terminal_statuses``, ``failure_statuses``,
        ``failure_threshold``, ``missing``, ``wait_for_messages``, ``count_only``), so that triggers
        deferred before an upgrade still run.
    """

    def __init__(
        self,
        *,
        voicetrack_conn_id: str,
        message_ids: list[str] | None = None,
        target: SearchTarget | dict[str, Any] | None = None,
        criteria: StatusCriteria | dict[str, Any] | None = None,
        poke_interval: float,
        timeout_at: datetime | None,
        first_check_after: float = 0.0,
        **legacy: Any,
    ) -> None:
        super().__init__()
        if legacy:  # serialized by an earlier version: the target's and the criteria's fields, flat
            unknown = sorted(set(legacy) - _LEGACY_TARGET - _LEGACY_CRITERIA)
            if unknown:
                raise TypeError(f"VoiceMessageStatusTrigger got unexpected arguments {unknown}")
            if message_ids is None:
                target = {name: legacy.get(name) for name in _LEGACY_TARGET}
                target["filters"] = target["filters"] or []
            criteria = {name: legacy[name] for name in _LEGACY_CRITERIA if name in legacy}
        self.voicetrack_conn_id = voicetrack_conn_id
        self.message_ids = message_ids
        self.target = SearchTarget(**target) if isinstance(target, dict) else target
        self.criteria = (
            criteria if isinstance(criteria, StatusCriteria) else StatusCriteria.build(**(criteria or {}))
        )
        if (message_ids is None) == (self.target is None):
            raise ValueError("VoiceMessageStatusTrigger needs either message_ids or a target, not both")
        self.poke_interval = poke_interval
        self.timeout_at = timeout_at
        self.first_check_after = first_check_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor's keyword arguments, the dataclasses as dicts."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "voicetrack_conn_id": self.voicetrack_conn_id,
                "message_ids": self.message_ids,
                "target": None if self.target is None else to_kwargs(self.target),
                "criteria": to_kwargs(self.criteria),
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "first_check_after": self.first_check_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Evaluate until a final outcome, then yield its single event."""
        hook = VoiceTrackAsyncHook(self.voicetrack_conn_id)
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
        last_error: Exception | None = None
        if self.first_check_after > 0 and not await self._sleep(self.first_check_after):
            return self._timeout_payload(None, "timed out before the first check")
        while True:
            # A rate limit pauses every request of the connection; a pause past the timeout would
            # hold this poke past it.
            if (
                self.timeout_at is not None
                and await hook.paused_for() >= self.timeout_at.timestamp() - time.time()
            ):
                detail = f"last attempt failed: {last_error}" if last_error else "paused for a rate limit"
                return self._timeout_payload(None, detail)
            try:
                settings = await hook.get_settings()
                flow = poke_flow(settings, self.criteria, target=self.target, tracker=tracker, log=self.log)
                evaluation = await hook.run_flow(flow)
            except VoiceTrackTransientError as err:
                errors += 1
                last_error = err
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
            if evaluation.done:
                self.log.info("%s", evaluation.message)
                return {"status": "success", "summary": evaluation.summary}
            if evaluation.failed:
                return {"status": "failure", "message": evaluation.message, "summary": evaluation.summary}
            self.log.info("%s", evaluation.message)
            if not await self._sleep(self.poke_interval):
                return self._timeout_payload(evaluation, evaluation.message)

    async def _sleep(self, seconds: float, *, minimum: float = 0.0) -> bool:
        """
        Sleep ``seconds`` with jitter; return False if ``timeout_at`` has passed.

        The sleep lasts at least ``minimum`` (e.g. a server's ``Retry-After``), never past ``timeout_at``.
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
