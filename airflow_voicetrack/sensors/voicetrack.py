"""Sensor that waits until voice messages tracked by Routee reach a terminal status."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.protocol import SearchQuery, resolve_campaign_tracking_id, search_query
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger
from airflow_voicetrack.waiting import (
    IdsTracker,
    StatusCriteria,
    WaitEvent,
    poke_flow,
    resolve_message_ids,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class VoiceMessageStatusSensor(BaseSensorOperator):
    """
    Wait until every targeted voice message has a terminal status; push a summary to XCom.

    Target either explicit ``message_ids`` or a search (``campaign_tracking_id`` and/or a date range
    and/or ``filters``), not both.

    Each poke is cheap. In search mode it costs a constant number of requests whatever the number
    of messages: one one-item search counts the messages that are not terminal (the user's filters
    AND one ``status.status is_not`` filter per terminal status, read from ``totalElements``);
    only when that reaches 0, or when ``failure_statuses`` are set, one count per terminal status
    follows, and, on a final poke with failures, one search of one page (``limit`` 20) per failure
    status that has messages, for example ids. So with ``T`` terminal statuses a waiting poke costs
    1 request (``1 + T`` with ``failure_statuses``) and the final poke ``1 + T + F``, ``F`` being
    the failure statuses with at least one message. In ids mode only the ids not yet terminal are
    fetched again, concurrently (bounded by the connection's ``max_concurrency``); the terminal ones
    are remembered on the instance in poke mode and in the trigger in deferrable mode (reschedule
    mode re-fetches every id on each poke).

    Returned to XCom (in every mode)::

        {"total": 120, "pending": 0, "by_status": {"Completed": 100, "Failed": 20, ...},
         "failed_ids": {"Failed": ["<id>", ...]}}

    with at most 20 ids per failure status, and ``missing_ids`` in ids mode when ``missing="wait"``
    and some ids were unknown.

    :param voicetrack_conn_id: connection id of type ``voicetrack``.
    :param message_ids: ids to wait for (templated). A list, or a string: a JSON list (what an XCom
        pull renders to unless the DAG sets ``render_template_as_native_obj``) or else one id.
        Duplicates are ignored. An empty list succeeds at once with a zero summary.
    :param campaign_tracking_id: search mode: only messages of the campaign with this tracking id
        (the API's ``trackingId``; templated): the id Routee returns when the campaign is created and
        shows in its console, not the campaign *name* that messages carry in ``campaign``.
    :param date_start: search mode: start of the creation-time range, inclusive (templated);
        aware datetime or ISO-8601 string with an offset.
    :param date_end: search mode: end of the range, exclusive (templated).
    :param filters: search mode: search filters, AND-combined (templated); see
        :func:`airflow_voicetrack.protocol.normalize_filters`.
    :param terminal_statuses: statuses that count as terminal. Default: Completed, Busy, NoAnswer,
        Failed, Unsent, Terminated and Unknown. Routee's docs disagree on ``Unknown`` (one copy of
        the statuses page says intermediate, another final); it is terminal by default so a wait
        never hangs on a message that will not change again. Pass a set without it to wait on.
    :param failure_statuses: terminal statuses that fail the task without retry
        (``AirflowFailException``), with the counts and example ids, e.g. ``{"Failed", "Unsent"}``.
        The task fails as soon as the outcome is certain, even while other messages are pending.
    :param failure_threshold: with ``failure_statuses``: fail only when the share of messages in
        failure statuses exceeds this fraction in [0, 1) (of the messages known at that poke).
        Default ``None``: fail on the first one.
    :param missing: an unknown message id (HTTP 404): ``"fail"`` (default) fails without retry,
        naming the ids; ``"wait"`` treats it as not terminal yet.
    :param wait_for_messages: search mode: while the search matches no message, keep waiting
        (``True``) or succeed with a zero summary (``False``, default: "every message of an empty
        set is terminal", e.g. a day without calls).
    :param campaign_id: deprecated name of ``campaign_tracking_id`` (a ``DeprecationWarning``;
        removed in the next minor version).
    :param deferrable: wait in the triggerer with
        :class:`~airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger`; ``execute``
        defers at once, without a request on the worker. ``timeout`` still applies and ends the
        wait with ``AirflowSensorTimeout``.
    """

    template_fields: Sequence[str] = (
        "message_ids",
        "campaign_tracking_id",
        "date_start",
        "date_end",
        "filters",
    )
    template_fields_renderers = {"message_ids": "json", "filters": "json"}
    ui_color = "#f4e6fb"

    def __init__(
        self,
        *,
        voicetrack_conn_id: str = VoiceTrackHook.default_conn_name,
        message_ids: Collection[str] | str | None = None,
        campaign_tracking_id: str | None = None,
        date_start: datetime | str | None = None,
        date_end: datetime | str | None = None,
        filters: Sequence[Any] | None = None,
        terminal_statuses: Collection[str] | None = None,
        failure_statuses: Collection[str] | None = None,
        failure_threshold: float | None = None,
        missing: str = "fail",
        wait_for_messages: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        campaign_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # stacklevel 4: Airflow wraps __init__ (apply_defaults), the DAG file is one frame further.
        campaign_tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id, stacklevel=4)
        searching = any(value is not None for value in (campaign_tracking_id, date_start, date_end, filters))
        if (message_ids is None) == (not searching):
            raise ValueError(
                "Give either message_ids or a search (campaign_tracking_id, date_start, date_end and/or "
                "filters), " + ("not both." if searching else "not neither.")
            )
        if message_ids is not None and not isinstance(message_ids, (list, tuple, str)):
            raise ValueError(
                f"message_ids must be a list of ids or a string, got {type(message_ids).__name__}."
            )
        if message_ids is not None and wait_for_messages:
            raise ValueError(
                "wait_for_messages applies to search mode only; remove it when giving message_ids."
            )
        self.criteria = StatusCriteria.build(
            terminal_statuses=terminal_statuses,
            failure_statuses=failure_statuses,
            failure_threshold=failure_threshold,
            missing=missing,
            wait_for_messages=wait_for_messages,
        )
        self.voicetrack_conn_id = voicetrack_conn_id
        self.message_ids = message_ids
        self.campaign_tracking_id = campaign_tracking_id
        self.date_start = date_start
        self.date_end = date_end
        self.filters = filters
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> VoiceTrackHook:
        """The synchronous hook used by poke and reschedule modes."""
        return VoiceTrackHook(self.voicetrack_conn_id)

    @cached_property
    def _ids(self) -> IdsTracker | None:
        """Ids-mode progress, validated from the rendered ``message_ids``; ``None`` in search mode."""
        if self.message_ids is None:
            return None
        return IdsTracker(resolve_message_ids(self.message_ids), self.criteria)

    @cached_property
    def _search(self) -> SearchQuery:
        """The search, validated from the rendered template fields."""
        return search_query(
            date_start=self.date_start,
            date_end=self.date_end,
            filters=self.filters,
            campaign_tracking_id=self.campaign_tracking_id,
        )

    def execute(self, context: Context) -> Any:
        """Wait by poking, or defer to the trigger at once when ``deferrable``."""
        # Validate the rendered values before any request, in every mode.
        tracker = self._ids
        search = self._search if tracker is None else None
        if not self.deferrable:
            return super().execute(context)
        timeout_at = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        trigger = VoiceMessageStatusTrigger(
            voicetrack_conn_id=self.voicetrack_conn_id,
            message_ids=tracker.message_ids if tracker is not None else None,
            target=search,
            criteria=self.criteria,
            poke_interval=self.poke_interval,
            timeout_at=timeout_at,
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def poke(self, context: Context) -> PokeReturnValue:
        """Evaluate once with :func:`~airflow_voicetrack.waiting.poke_flow`; fail at once on failure."""
        tracker = self._ids
        target = self._search if tracker is None else None
        flow = poke_flow(self.hook.settings, self.criteria, target=target, tracker=tracker, log=self.log)
        evaluation = self.hook.run_flow(flow)
        if evaluation.failed:
            raise AirflowFailException(evaluation.message)
        self.log.info("%s", evaluation.message)
        return PokeReturnValue(is_done=evaluation.done, xcom_value=evaluation.summary)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Resume after the trigger fired: return the summary or raise for its outcome.

        :raises AirflowFailException: failure statuses above the threshold, or unknown ids.
        :raises AirflowSensorTimeout: the trigger reached the sensor's ``timeout``.
        :raises AirflowException: the trigger hit an error it could not wait out.
        """
        outcome = WaitEvent.decode(event)
        if outcome.status == "success":
            summary: dict[str, Any] = outcome.summary or {}
            self.log.info(
                "All %s messages are in a terminal status: %s", summary["total"], summary["by_status"]
            )
            return summary
        if outcome.status == "failure":
            raise AirflowFailException(outcome.message)
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        raise AirflowException(f"VoiceMessageStatusTrigger failed: {outcome.message}")
