"""The event the status trigger fires, and how the resumed task reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
