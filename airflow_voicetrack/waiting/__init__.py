"""
Waiting for final statuses: the one place for the sensor, the triggers and the operator's wait.

One module per concept:

- :mod:`~.criteria`: what done and failed mean (:class:`StatusCriteria`, :class:`Evaluation`,
  :class:`IdsTracker`) and the summary a wait returns;
- :mod:`~.queries`: the searches a wait sends (:func:`pending_query`, :func:`status_query`) and how a
  trigger serializes them (:func:`encode_query`, :func:`decode_query`);
- :mod:`~.poke`: :func:`poke_flow`, one poke, run by the sensor with the sync hook and by the trigger
  with the async hook, so the two cannot drift;
- :mod:`~.watcher`: the event watcher's flows (:func:`poll_flow`, :func:`settled_flow`,
  :func:`settled_windows_flow`) and where its progress is kept (:class:`ProgressStore`);
- :mod:`~.events`: the status trigger's event (:class:`WaitEvent`: one encode, one decode);
- :mod:`~.settle`: the operator's wait (:class:`IntervalWait`) and its check of what it writes
  (:class:`StatusGuard`).

Modules import one way, down this list. Every name is importable from ``airflow_voicetrack.waiting``.
"""

from __future__ import annotations

from airflow_voicetrack.waiting.criteria import (
    FAILED_IDS_CAP,
    MISSING_MODES,
    Evaluation,
    IdsTracker,
    StatusCriteria,
    Verdict,
    evaluate_counts,
    message_id_of,
    resolve_message_ids,
    status_of,
    statuses_to_count,
    statuses_to_sample,
    to_kwargs,
)
from airflow_voicetrack.waiting.events import WaitEvent, WaitOutcome
from airflow_voicetrack.waiting.poke import poke_flow
from airflow_voicetrack.waiting.queries import (
    STATUS_FIELD,
    decode_query,
    encode_query,
    legacy_arguments,
    pending_query,
    status_query,
)
from airflow_voicetrack.waiting.settle import (
    ON_UNSETTLED,
    UNSETTLED_EXAMPLES,
    IntervalWait,
    NotTerminalError,
    StatusGuard,
    check_settle_arguments,
    unsettled_message,
)
from airflow_voicetrack.waiting.watcher import (
    CAMPAIGN_FINISHED,
    EVENT_MODES,
    MAX_WINDOWS_PER_POLL,
    WINDOWS_SETTLED,
    Progress,
    ProgressStore,
    campaign_event,
    duration_seconds,
    poll_flow,
    settled_flow,
    settled_windows_flow,
    state_key,
    store_call,
    window_event,
    window_floor,
)

__all__ = [
    "CAMPAIGN_FINISHED",
    "EVENT_MODES",
    "FAILED_IDS_CAP",
    "MAX_WINDOWS_PER_POLL",
    "MISSING_MODES",
    "ON_UNSETTLED",
    "STATUS_FIELD",
    "UNSETTLED_EXAMPLES",
    "WINDOWS_SETTLED",
    "Evaluation",
    "IdsTracker",
    "IntervalWait",
    "NotTerminalError",
    "Progress",
    "ProgressStore",
    "StatusCriteria",
    "StatusGuard",
    "Verdict",
    "WaitEvent",
    "WaitOutcome",
    "campaign_event",
    "check_settle_arguments",
    "decode_query",
    "duration_seconds",
    "encode_query",
    "evaluate_counts",
    "legacy_arguments",
    "message_id_of",
    "pending_query",
    "poke_flow",
    "poll_flow",
    "resolve_message_ids",
    "settled_flow",
    "settled_windows_flow",
    "state_key",
    "status_of",
    "status_query",
    "statuses_to_count",
    "statuses_to_sample",
    "store_call",
    "to_kwargs",
    "unsettled_message",
    "window_event",
    "window_floor",
]
