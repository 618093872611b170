"""Remove or pseudonymise personal data in voice messages before they are written.

Messages carry phone numbers (``to``, ``from``, ``recordings.from``, ``recordings.to``), the text
spoken (``message.text``) and recording URLs (``recordings.url``, ``fileURL``). A
:class:`PersonalDataFilter` applies two lists of dotted paths to each decoded message:

``exclude_fields``
    the value at the path is removed (the key disappears; a CSV or Parquet column disappears).
``hash_fields``
    the value is replaced by ``hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()``:
    64 lowercase hex characters, the same for the same value and key (joins keep working) and not
    reversible without the key. In a list of strings (``groups``, ``recordings.voiceTrackingIds``)
    each item is hashed. A null or missing value stays as it is.

A path names a field of the documented message schema (:data:`MESSAGE_PATHS`); a path through
``recordings`` applies to every recording. The filter changes messages in place: the hook yields
fresh dicts that nobody else holds.

**Contract with the writers** (for anyone adding a faster path): the filter works on decoded
messages only. A writer that copies each message's bytes as received (the raw JSON Lines path)
must, when a filter is active (:attr:`PersonalDataFilter.active`), decode every message, apply the
filter, and encode the result instead; with no filter it may copy bytes untouched. CSV and
Parquet take their columns from :meth:`PersonalDataFilter.columns`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook, Variable
from airflow.sdk.log import mask_secret

from airflow_voicetrack.protocol.calls import Log
from airflow_voicetrack.writers import CSV_COLUMNS, json_text

#: Fields of a recording (items of ``recordings``).
RECORDING_FIELDS: tuple[str, ...] = (
    "trackingId",
    "start",
    "end",
    "from",
    "to",
    "url",
    "voiceTrackingIds",
    "conversationTrackingId",
    "duration",
)
#: Every path ``exclude_fields`` and ``hash_fields`` accept: the documented message schema.
MESSAGE_PATHS: tuple[str, ...] = (
    *(column for column in CSV_COLUMNS if column != "extra"),
    "status",
    "message",
    *(f"recordings.{name}" for name in RECORDING_FIELDS),
)
#: Paths holding text (or lists of text) that ``hash_fields`` accepts. Numbers and objects are not
#: hashed: a hashed number tells nothing, and an object's parts can be hashed one by one.
HASHABLE_PATHS: frozenset[str] = frozenset(MESSAGE_PATHS) - {
    "messageId",
    "duration",
    "price",
    "chargeInterval",
    "status",
    "message",
    "recordings",
    "recordings.duration",
}
#: The record key: kept, because de-duplication and every downstream join use it.
PROTECTED_PATHS: frozenset[str] = frozenset({"messageId"})
#: Paths whose value is a list of objects; a path below them applies to every item.
_LIST_OF_OBJECTS = frozenset({"recordings"})
#: Shortest key accepted, in characters.
MIN_KEY_LENGTH = 16

_EXCLUDE = "exclude"
_HASH = "hash"


def validate_paths(exclude_fields: Any, hash_fields: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """
    Check ``exclude_fields`` and ``hash_fields`` before any request.

    :return: both as tuples of paths.
    :raises ValueError: naming the argument, the path at fault and what is accepted.
    """
    exclude = _path_list(exclude_fields, "exclude_fields")
    hashed = _path_list(hash_fields, "hash_fields")
    for name, paths in (("exclude_fields", exclude), ("hash_fields", hashed)):
        for path in paths:
            if path not in MESSAGE_PATHS:
                raise ValueError(
                    f"{name}: unknown field {path!r}; use dotted paths of the message schema: "
                    f"{', '.join(MESSAGE_PATHS)}"
                )
            if path in PROTECTED_PATHS:
                raise ValueError(f"{name}: {path!r} is the record key and cannot be removed or hashed")
    for path in hashed:
        if path not in HASHABLE_PATHS:
            raise ValueError(
                f"hash_fields: {path!r} does not hold text; hash text fields "
                f"({', '.join(sorted(HASHABLE_PATHS))}) or put it in exclude_fields"
            )
    for path in hashed:
        covering = [e for e in exclude if path == e or path.startswith(e + ".")]
        if covering:
            raise ValueError(
                f"hash_fields: {path!r} is also removed by exclude_fields {covering[0]!r}; "
                "keep it in one list"
            )
    return exclude, hashed


def _path_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(
            f"{name} must be a list of dotted paths such as ['to', 'message.text'], got {value!r}"
        )
    paths = tuple(value)
    for path in paths:
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{name} must hold non-empty strings (dotted paths), got {path!r}")
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ValueError(f"{name} names {duplicates[0]!r} more than once")
    return paths


def validate_key(key: Any, source: str) -> bytes:
    """
    Validate the hash key.

    :param key: the HMAC key as read from its connection or variable.
    :param source: where it was read, for the error (never the key itself).
    :return: the key's UTF-8 bytes.
    :raises ValueError: when it is missing or shorter than :data:`MIN_KEY_LENGTH` characters.
    """
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"the hash key in {source} is missing or shorter than {MIN_KEY_LENGTH} characters; store a "
            'long random value there, e.g. the output of `python -c "import secrets; '
            'print(secrets.token_urlsafe(32))"`'
        )
    return key.encode("utf-8")


def check_hash_key_source(
    hash_fields: Sequence[str], conn_id: str | None, variable: str | None
) -> tuple[str | None, str | None]:
    """
    Validate where the hash key is read from: ``hash_key_conn_id`` or ``hash_key_variable``.

    :raises ValueError: for both, or neither while ``hash_fields`` are set, or either without them.
    """
    if conn_id is not None and variable is not None:
        raise ValueError("set either hash_key_conn_id or hash_key_variable, not both")
    if hash_fields and conn_id is None and variable is None:
        raise ValueError(
            "hash_fields needs a key: set hash_key_conn_id (a connection whose password is the key) or "
            "hash_key_variable (an Airflow variable holding it); never put the key in the DAG file"
        )
    if not hash_fields and (conn_id is not None or variable is not None):
        raise ValueError("hash_key_conn_id and hash_key_variable are used only with hash_fields")
    for name, value in (("hash_key_conn_id", conn_id), ("hash_key_variable", variable)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return conn_id, variable


def read_filter(
    exclude_fields: Sequence[str],
    hash_fields: Sequence[str],
    hash_key_conn_id: str | None,
    hash_key_variable: str | None,
    log: Log,
) -> PersonalDataFilter:
    """
    Build the filter of a task's validated arguments, reading the hash key from Airflow.

    The key is read before any request, registered with the secrets masker, never logged.

    :raises ValueError: when the key is missing or too short (see :func:`validate_key`).
    """
    key = None
    if hash_fields:
        if hash_key_conn_id is not None:
            source = f"the password of connection {hash_key_conn_id!r} (hash_key_conn_id)"
            value = BaseHook.get_connection(hash_key_conn_id).password
        else:
            assert hash_key_variable is not None  # checked by check_hash_key_source
            source = f"variable {hash_key_variable!r} (hash_key_variable)"
            value = Variable.get(hash_key_variable, default=None)
        if isinstance(value, str) and value:
            mask_secret(value)
        key = validate_key(value, source)
        log.info("Hashing %s with the key in %s", ", ".join(hash_fields), source)
    if exclude_fields:
        log.info("Removing %s from every message", ", ".join(exclude_fields))
    return PersonalDataFilter(exclude_fields, hash_fields, key)


@dataclass(frozen=True)
class _Node:
    """What to do at one path segment: an action (leaf), or the children below it."""

    action: str | None
    children: dict[str, _Node]


def _tree(exclude: Sequence[str], hashed: Sequence[str]) -> dict[str, _Node]:
    root: dict[str, Any] = {}
    for action, paths in ((_EXCLUDE, exclude), (_HASH, hashed)):
        for path in paths:
            *parents, leaf = path.split(".")
            level = root
            for part in parents:
                level = level.setdefault(part, {})
                if not isinstance(level, dict):  # the parent itself is excluded: nothing below
                    break
            else:
                level[leaf] = action
    return _freeze(root)


def _freeze(level: dict[str, Any]) -> dict[str, _Node]:
    return {
        key: _Node(value, {}) if isinstance(value, str) else _Node(None, _freeze(value))
        for key, value in level.items()
    }


class PersonalDataFilter:
    """
    Remove (``exclude_fields``) and hash (``hash_fields``) dotted paths of each message.

    See the module docstring.

    :param exclude_fields: paths removed from every message.
    :param hash_fields: paths whose text is replaced by its HMAC-SHA256 under ``key``.
    :param key: the HMAC key; required when ``hash_fields`` is not empty.
    """

    def __init__(
        self,
        exclude_fields: Sequence[str] = (),
        hash_fields: Sequence[str] = (),
        key: bytes | None = None,
    ) -> None:
        self.exclude_fields, self.hash_fields = validate_paths(exclude_fields, hash_fields)
        if self.hash_fields and not key:
            raise ValueError("hash_fields needs a key")
        # hmac.copy() of a keyed object skips re-deriving the key's pads for every value.
        self._hmac = hmac.new(key or b"", digestmod=hashlib.sha256)
        self._tree = _tree(self.exclude_fields, self.hash_fields)

    def __repr__(self) -> str:  # never the key
        return f"PersonalDataFilter(exclude_fields={self.exclude_fields!r}, hash_fields={self.hash_fields!r})"

    @property
    def active(self) -> bool:
        """Whether the filter changes anything (else messages can be written as received)."""
        return bool(self._tree)

    def hash_text(self, value: str) -> str:
        """:return: the HMAC-SHA256 of ``value``'s UTF-8 bytes, as 64 hex characters."""
        digest = self._hmac.copy()
        digest.update(value.encode("utf-8"))
        return digest.hexdigest()

    def apply(self, message: dict[str, Any]) -> dict[str, Any]:
        """Filter one message in place and return it."""
        self._apply(message, self._tree)
        return message

    def apply_all(self, messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Filter messages lazily, one at a time."""
        for message in messages:
            self._apply(message, self._tree)
            yield message

    def columns(self, columns: Sequence[str] = CSV_COLUMNS) -> tuple[str, ...]:
        """
        Return the CSV and Parquet columns left once ``exclude_fields`` is applied.

        :return: the columns left: an excluded
            field's column, or every column below an excluded object (``message`` removes
            ``message.gender``, ``message.language`` and ``message.text``), is dropped.
        """
        return tuple(
            column
            for column in columns
            if not any(column == path or column.startswith(path + ".") for path in self.exclude_fields)
        )

    def _apply(self, obj: dict[str, Any], level: dict[str, _Node]) -> None:
        for key, node in level.items():
            if key not in obj:
                continue
            if node.action == _EXCLUDE:
                del obj[key]
                continue
            value = obj[key]
            if node.action == _HASH:
                obj[key] = self._hash_value(value)
            elif isinstance(value, dict):
                self._apply(value, node.children)
            elif key in _LIST_OF_OBJECTS and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        self._apply(item, node.children)

    def _hash_value(self, value: Any) -> Any:
        if value is None:
            return None  # nothing to hide
        if isinstance(value, str):
            return self.hash_text(value)
        if isinstance(value, list):
            return [self._hash_value(item) for item in value]
        # Not text where the schema says text (a number, say): hash its JSON, never leave it in clear.
        return self.hash_text(json_text(value))
