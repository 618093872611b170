"""Small functions over lists of messages (as the API returns them) and over output files."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES

#: The CSV and Parquet columns in the order README.md documents them (the specification: written
#: out here, not imported, so that reordering or dropping a column in the code fails the tests).
DOCUMENTED_COLUMNS = (
    "messageId",
    "conversationTrackingId",
    "to",
    "from",
    "groups",
    "country",
    "status.status",
    "status.date",
    "campaign",
    "applicationName",
    "originatingService",
    "direction",
    "duration",
    "fileURL",
    "message.gender",
    "message.language",
    "message.text",
    "price",
    "chargeInterval",
    "collectedTones",
    "recordings",
    "answeredBy",
    "extra",
)


def by_id(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:return: ``messages`` in ``messageId`` order (the truth endpoint's order)."""
    return sorted(messages, key=lambda m: m["messageId"])


def duplicates(messages: list[dict[str, Any]]) -> list[str]:
    """:return: the ``messageId`` values that occur more than once."""
    counts = Counter(m["messageId"] for m in messages)
    return sorted(mid for mid, n in counts.items() if n > 1)


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    """:return: the messages of a JSON-lines object."""
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def status_counts(messages: list[dict[str, Any]]) -> dict[str, int]:
    """:return: how many messages are in each default terminal status (every one listed)."""
    counts = Counter(m["status"]["status"] for m in messages)
    return {status: counts.get(status, 0) for status in sorted(DEFAULT_TERMINAL_STATUSES)}


def files_under(directory: Path) -> list[str]:
    """:return: every file below ``directory``, relative, sorted."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


#: The documented top-level fields that are columns of their own, and the keys of ``status`` and
#: ``message`` that are (as ``status.<key>``, ``message.<key>``); everything else goes to ``extra``.
_TOP_COLUMNS = tuple(c for c in DOCUMENTED_COLUMNS if "." not in c and c != "extra")
_NESTED_COLUMNS = {"status": ("status", "date"), "message": ("gender", "language", "text")}


def documented_row(message: dict[str, Any]) -> dict[str, Any]:
    """
    The CSV/Parquet row README.md documents for a message, built here by hand (not with the writer's
    own ``flatten_message``, so a change to it fails the tests): one value per documented column,
    ``None`` when missing; ``status`` and ``message`` keys as dotted columns; every other field or
    nested key under its dotted name in ``extra`` (``None`` when there is none).
    """
    row: dict[str, Any] = {column: message.get(column) for column in _TOP_COLUMNS}
    extra = {k: v for k, v in message.items() if k not in _TOP_COLUMNS and k not in _NESTED_COLUMNS}
    for field, keys in _NESTED_COLUMNS.items():
        nested = message.get(field) or {}
        for key in keys:
            row[f"{field}.{key}"] = nested.get(key)
        extra.update({f"{field}.{k}": v for k, v in nested.items() if k not in keys})
    row["extra"] = extra or None
    return row


def csv_cells(message: dict[str, Any], columns: Sequence[str] = DOCUMENTED_COLUMNS) -> dict[str, str]:
    """:return: the CSV row of a message: non-strings JSON-encoded as the CSV holds them, nulls empty."""
    row = documented_row(message)
    return {
        column: ("" if row.get(column) is None else row[column])
        if isinstance(row.get(column), str | None)
        else json.dumps(row[column], separators=(",", ":"))
        for column in columns
    }
