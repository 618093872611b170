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
