"""One poke of a wait: a protocol flow the sensor runs with the sync hook, the trigger with the async one."""

from __future__ import annotations

from dataclasses import replace

from airflow_voicetrack.protocol import (
    Flow,
    SearchQuery,
    Settings,
    count_flow,
    first_ids_flow,
    messages_flow,
)
from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.waiting.criteria import (
    FAILED_IDS_CAP,
    Evaluation,
    IdsTracker,
    StatusCriteria,
    evaluate_counts,
    statuses_to_count,
    statuses_to_sample,
)
from airflow_voicetrack.waiting.queries import pending_query, status_query


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
