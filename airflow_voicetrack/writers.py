"""Streaming, atomic writers of voice messages to object storage.

Formats (the name is also the file extension):

``jsonl``
    One message per line, as the API returned it (unknown fields kept): the operator writes each
    message's bytes from the response without decoding it (see :class:`JsonLinesWriter`).
``jsonl.gz``, ``csv.gz``
    The same, gzip-compressed.
``csv``
    A header, then one row per message in the columns of :data:`CSV_COLUMNS` (see
    :func:`flatten_message`). Strings are written as they are, missing or null values as empty cells,
    every other value (numbers, booleans, lists, objects) JSON-encoded.
``parquet``
    The columns of :data:`CSV_COLUMNS` with the fixed schema of :func:`parquet_schema`, written in row
    groups. Needs ``pyarrow``: ``pip install 'airflow-provider-voicetrack[parquet]'``.

Memory stays flat: rows are buffered up to a fixed size (:data:`BUFFER_BYTES`, or
:data:`PARQUET_ROW_GROUP_SIZE` rows) and then handed to the store.

Atomic commit (:func:`write_messages`): the object is written to a temporary sibling named
``_<name>.voicetrack-tmp-<uuid>`` and then moved to the final path. On a local file system the move is
a ``rename(2)``, which atomically replaces the old file. On object stores (S3, GCS, ...) fsspec moves by
a server-side copy, which makes the final object visible only once complete, followed by a delete of
the temporary object; s3fs itself only creates an object when its upload completes, so a process killed
mid-write leaves nothing on S3 but an incomplete multipart upload (removed by the bucket's
``AbortIncompleteMultipartUpload`` lifecycle rule). A clean failure deletes the temporary object. Only a
process killed with ``SIGKILL`` on a file system can leave a stray temporary file; its leading ``_``
makes Spark, Hive, Athena and Glue ignore it, and ``*.voicetrack-tmp-*`` finds it for clean-up.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Protocol

import msgspec
from airflow.sdk.lineage import get_hook_lineage_collector

from airflow_voicetrack.protocol.bodies import RawMessage

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

#: Output formats, also used as file extensions.
FORMATS: tuple[str, ...] = ("jsonl", "jsonl.gz", "csv", "csv.gz", "parquet")
#: Formats written from the raw bytes of each message (see ``VoiceTrackHook.search_messages``).
RAW_FORMATS: frozenset[str] = frozenset({"jsonl", "jsonl.gz"})

#: Columns of the ``csv`` and ``parquet`` formats, in this order: the documented message fields,
#: nested objects flattened with dots, then ``extra``, a JSON object holding every field not listed
#: here (so nothing the API returns is lost when it adds fields).
CSV_COLUMNS: tuple[str, ...] = (
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
_KNOWN_COLUMNS = frozenset(CSV_COLUMNS) - {"extra"}
#: Message fields holding an object whose keys become dotted columns.
_NESTED_FIELDS = frozenset(column.split(".", 1)[0] for column in CSV_COLUMNS if "." in column)
_NUMBER_COLUMNS = frozenset({"duration", "price", "chargeInterval"})
_LIST_OF_STRING_COLUMNS = frozenset({"groups"})

#: Bytes buffered in memory before a write to the store.
BUFFER_BYTES = 1 << 20
#: Rows per Parquet row group.
PARQUET_ROW_GROUP_SIZE = 10_000
#: Marks temporary objects (see the module docstring).
TEMP_MARKER = ".voicetrack-tmp-"

_json_encoder = msgspec.json.Encoder()


def flatten_message(message: dict[str, Any]) -> dict[str, Any]:
    """
    Map a message onto :data:`CSV_COLUMNS`.

    Keys of the nested objects ``status`` and ``message`` become ``status.status``, ``message.text``
    and so on; a null ``message`` (a call that played a file) leaves those columns empty. Fields and
    nested keys that are not in :data:`CSV_COLUMNS` are collected, under their dotted names, into the
    ``extra`` column (a dict, or None when there are none). Values are not converted; columns missing
    from the message are absent from the result.

    :param message: A voice message object as returned by the API.
    """
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in message.items():
        if key in _NESTED_FIELDS and value is None:
            continue  # a documented field, null: its columns stay empty, nothing is lost
        if key in _NESTED_FIELDS and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                name = f"{key}.{sub_key}"
                (row if name in _KNOWN_COLUMNS else extra)[name] = sub_value
        elif key in _KNOWN_COLUMNS:
            row[key] = value
        else:
            extra[key] = value
    row["extra"] = extra or None
    return row


def parquet_schema(columns: Sequence[str] = CSV_COLUMNS) -> pa.Schema:
    """
    Return the fixed Parquet schema.

    ``groups`` is a list of strings; ``duration``, ``price`` and
    ``chargeInterval`` are doubles; every other column is a string, with ``recordings`` and ``extra``
    JSON-encoded and ``status.date`` kept as the ISO-8601 text the API returned.

    :param columns: the columns, in order (:data:`CSV_COLUMNS` less any removed ones).
    """
    pa = _import_pyarrow()

    def column_type(name: str) -> Any:
        if name in _NUMBER_COLUMNS:
            return pa.float64()
        if name in _LIST_OF_STRING_COLUMNS:
            return pa.list_(pa.string())
        return pa.string()

    return pa.schema([pa.field(name, column_type(name)) for name in columns])


def column_types(output_format: str, columns: Sequence[str] = CSV_COLUMNS) -> list[tuple[str, str]] | None:
    """
    Name and type of each column an object holds, for the lineage schema facet.

    :param output_format: one of :data:`FORMATS`.
    :param columns: the CSV and Parquet columns, in order (:data:`CSV_COLUMNS` less any removed ones).
    :return: ``(column, type)`` of each column an object of ``output_format`` holds, for lineage: the
        :func:`parquet_schema` types for ``parquet``, ``string`` for every CSV column, and None for
        JSON Lines (messages as the API returned them, with no fixed columns).
    """
    if output_format == "parquet":
        # "list<string>": Arrow names a list's item "item", Parquet files "element"; neither matters.
        return [
            (
                field.name,
                f"list<{field.type.value_type}>"
                if field.name in _LIST_OF_STRING_COLUMNS
                else str(field.type),
            )
            for field in parquet_schema(columns)
        ]
    if output_format.startswith("csv"):
        return [(name, "string") for name in columns]
    return None


def _import_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise ImportError(
            "output_format='parquet' needs pyarrow: pip install 'airflow-provider-voicetrack[parquet]'"
        ) from err
    return pyarrow


def json_text(value: Any) -> str:
    """:return: ``value`` as compact JSON text."""
    return _json_encoder.encode(value).decode()


class BinarySink(Protocol):
    """Where a :class:`MessageWriter` writes: a binary file, or anything with ``write`` and ``flush``."""

    def write(self, data: bytes, /) -> int:
        """Write ``data``; return how many bytes were written."""

    def flush(self) -> None:
        """Flush what is buffered."""


class _CountingFile:
    """Forward writes to a binary file and count the bytes written."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._fileobj.write(data)
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        self._fileobj.flush()

    @property
    def closed(self) -> bool:
        return self._fileobj.closed


class MessageWriter(ABC):
    """
    Encode messages into a binary file, one at a time, with bounded memory.

    :meth:`close` flushes what is buffered and finishes the format (gzip trailer, Parquet footer); it
    does not close ``fileobj``.

    :param fileobj: The binary file to write to.
    """

    def __init__(self, fileobj: BinarySink) -> None:
        self._fileobj = fileobj
        self.records = 0

    def write(self, message: Any) -> None:
        """Write one message."""
        self._write(message)
        self.records += 1

    @abstractmethod
    def _write(self, message: dict[str, Any]) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Flush the buffer and finish the format."""


class _BufferedWriter(MessageWriter):
    """A writer of text-like formats that hands the file chunks of about :data:`BUFFER_BYTES`."""

    def __init__(self, fileobj: BinarySink) -> None:
        super().__init__(fileobj)
        self._buffer = bytearray()

    def _append(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._fileobj.write(bytes(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self._flush()


class JsonLinesWriter(_BufferedWriter):
    """
    One JSON object per line, with every field the API returned.

    A :class:`~airflow_voicetrack.protocol.RawMessage` is written as the bytes the API sent (they
    hold no line break, see :func:`~airflow_voicetrack.protocol.parse_page`); a dict is encoded.
    """

    def _write(self, message: dict[str, Any] | RawMessage) -> None:
        if type(message) is RawMessage:
            self._buffer += message.raw
        else:
            _json_encoder.encode_into(message, self._buffer, -1)  # no intermediate bytes object
        self._append(b"\n")


class CsvWriter(_BufferedWriter):
    """
    A header row, then one row per message in :data:`CSV_COLUMNS` order (see the module docstring).

    :param columns: the columns, in order (:data:`CSV_COLUMNS` less any removed ones).
    """

    def __init__(self, fileobj: BinarySink, columns: Sequence[str] = CSV_COLUMNS) -> None:
        super().__init__(fileobj)
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._columns = tuple(columns)
        self._write_row(self._columns)

    def _write_row(self, cells: Iterable[str]) -> None:
        self._csv.writerow(cells)
        self._append(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()

    def _write(self, message: dict[str, Any]) -> None:
        row = flatten_message(message)
        self._write_row(_csv_cell(row.get(column)) for column in self._columns)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json_text(value)


class GzipWriter(MessageWriter):
    """Gzip-compress what another writer produces (no file name or time in the header: reproducible)."""

    def __init__(self, fileobj: BinarySink, inner: Callable[[BinarySink], _BufferedWriter]) -> None:
        super().__init__(fileobj)
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0)
        self._inner = inner(self._gzip)

    def _write(self, message: dict[str, Any]) -> None:
        self._inner.write(message)

    def close(self) -> None:
        """Flush the inner writer and write the gzip trailer."""
        self._inner.close()
        self._gzip.close()


class ParquetWriter(MessageWriter):
    """
    Rows of :data:`CSV_COLUMNS` typed by :func:`parquet_schema`, in groups of PARQUET_ROW_GROUP_SIZE.

    :param columns: the columns, in order (:data:`CSV_COLUMNS` less any removed ones).
    """

    def __init__(self, fileobj: BinarySink, columns: Sequence[str] = CSV_COLUMNS) -> None:
        super().__init__(fileobj)
        self._pa = _import_pyarrow()
        self._schema = parquet_schema(columns)
        self._writer = self._pa.parquet.ParquetWriter(fileobj, self._schema)
        self._columns: dict[str, list[Any]] = {name: [] for name in columns}

    def _write(self, message: dict[str, Any]) -> None:
        row = flatten_message(message)
        for name, values in self._columns.items():
            values.append(_parquet_value(name, row.get(name)))
        if len(self._columns["messageId"]) >= PARQUET_ROW_GROUP_SIZE:
            self._write_row_group()

    def _write_row_group(self) -> None:
        self._writer.write_table(self._pa.Table.from_pydict(self._columns, schema=self._schema))
        for values in self._columns.values():
            values.clear()

    def close(self) -> None:
        """Write the last row group and the Parquet footer."""
        if self._columns["messageId"]:
            self._write_row_group()
        self._writer.close()


def _parquet_value(column: str, value: Any) -> Any:
    if value is None or column in _NUMBER_COLUMNS or column in _LIST_OF_STRING_COLUMNS:
        return value
    if isinstance(value, str):
        return value
    return json_text(value)


def open_writer(
    output_format: str, fileobj: BinarySink, columns: Sequence[str] = CSV_COLUMNS
) -> MessageWriter:
    """
    Return the writer of ``output_format`` (one of :data:`FORMATS`) writing into ``fileobj``.

    :param output_format: One of :data:`FORMATS`.
    :param fileobj: The binary file to write to.
    :param columns: CSV and Parquet columns, in order (:data:`CSV_COLUMNS` less any removed ones).
    """
    writers: dict[str, Callable[[BinarySink], _BufferedWriter]] = {
        "jsonl": JsonLinesWriter,
        "csv": partial(CsvWriter, columns=columns),
    }
    base, _, compression = output_format.partition(".")
    if output_format not in FORMATS:
        raise ValueError(f"Unknown output format {output_format!r}; use one of {', '.join(FORMATS)}.")
    if base == "parquet":
        return ParquetWriter(fileobj, columns)
    if compression == "gz":
        return GzipWriter(fileobj, writers[base])
    return writers[base](fileobj)


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_messages` wrote.

    :param path: The final path, or None when nothing was written (empty and ``write_empty=False``).
    :param records: Messages written.
    :param bytes: Size of the object in bytes.
    """

    path: ObjectStoragePath | None
    records: int
    bytes: int


def object_uri(path: ObjectStoragePath) -> str:
    """Return the URI of ``path`` without the connection id (``s3://bucket/key``, ``file:///dir/name``)."""
    return f"{path.protocol}://{path.path}"


def temporary_path(path: ObjectStoragePath) -> ObjectStoragePath:
    """Return a new, unique temporary sibling of ``path`` (see the module docstring)."""
    return path.with_name(f"_{path.name}{TEMP_MARKER}{uuid.uuid4().hex}")


def write_messages(
    messages: Iterable[dict[str, Any]],
    path: ObjectStoragePath,
    output_format: str,
    *,
    write_empty: bool = True,
    columns: Sequence[str] = CSV_COLUMNS,
) -> WriteResult:
    """
    Stream ``messages`` into the object at ``path``, atomically replacing it.

    Only the final object is reported to Airflow's hook lineage collector (the temporary one is an
    implementation detail, so the writes bypass ``ObjectStoragePath.open``'s per-write reporting).

    The first message is fetched before anything is created, so that with ``write_empty=False`` an
    empty input leaves the store untouched. On any error (including ``KeyboardInterrupt`` and the
    task being killed with ``SIGTERM``) the temporary object is deleted and the final path keeps its
    previous content.

    :param messages: The messages; consumed once, lazily.
    :param path: The final path.
    :param output_format: One of :data:`FORMATS`.
    :param write_empty: Write a valid empty object (an empty file, a CSV header, a Parquet file with
        the schema and no rows) when there are no messages.
    :param columns: CSV and Parquet columns, in order (:data:`CSV_COLUMNS` less any removed ones, see
        :meth:`~airflow_voicetrack.personal_data.PersonalDataFilter.columns`).
    """
    iterator: Iterator[dict[str, Any]] = iter(messages)
    first = next(iterator, None)
    if first is None and not write_empty:
        return WriteResult(path=None, records=0, bytes=0)
    if first is not None:
        iterator = chain([first], iterator)

    fs = path.fs
    if "file" in fs.protocol:
        # Object stores have no directories; a local file system needs the parent to exist.
        fs.makedirs(path.parent.path, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with fs.open(temporary.path, "wb") as fileobj:
            counting = _CountingFile(fileobj)
            writer = open_writer(output_format, counting, columns)
            try:
                for message in iterator:
                    writer.write(message)
            except BaseException:
                # Finish the format while its file is open (the temporary object goes below):
                # pyarrow's writer, left open, would write its footer to the closed file when
                # collected, an error nobody can catch.
                with suppress(Exception):
                    writer.close()
                raise
            writer.close()
        fs.mv(temporary.path, path.path)
    except BaseException:
        if fs.exists(temporary.path):
            fs.rm_file(temporary.path)
        raise
    get_hook_lineage_collector().add_output_asset(context=path, uri=object_uri(path))
    return WriteResult(path=path, records=writer.records, bytes=counting.bytes_written)


@contextmanager
def gc_frozen() -> Iterator[None]:
    """
    Freeze the garbage collector's view of everything alive now, for the extraction.

    Move everything alive now (Airflow's own modules) out of the garbage collector's sight while
    the extraction allocates millions of short-lived dicts: each full collection would otherwise
    walk all of it. Airflow does the same in its forked processes (figures in
    ``benchmarks/RESULTS.md``). No collection first: in a task process it is slow, and what garbage
    is frozen is collected after.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
