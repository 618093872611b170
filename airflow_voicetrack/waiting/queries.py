"""The searches a wait sends, built on the user's, and how a trigger serializes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from airflow_voicetrack.protocol import (
    SearchQuery,
    format_datetime,
    search_query,
)

STATUS_FIELD = "status.status"


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


#: The flat arguments of earlier serialized forms (0.1.0 and after) that now live in ``target`` and
#: ``criteria`` (``campaign_id`` is ``campaign_tracking_id`` since; see
#: :func:`decode_query`).
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


def legacy_arguments(legacy: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Read the flat arguments a status trigger serialized before it had ``target`` and ``criteria``.

    :return: the target's keyword arguments (for search mode) and the criteria's.
    :raises TypeError: for an argument that no version had.
    """
    unknown = sorted(set(legacy) - _LEGACY_TARGET - _LEGACY_CRITERIA)
    if unknown:
        raise TypeError(f"VoiceMessageStatusTrigger got unexpected arguments {unknown}")
    target = {name: legacy.get(name) for name in _LEGACY_TARGET}
    target["filters"] = target["filters"] or []
    return target, {name: legacy[name] for name in _LEGACY_CRITERIA if name in legacy}
