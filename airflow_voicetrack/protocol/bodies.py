"""Reading response bodies: tokens, page envelopes, messages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec

#: A token is renewed this share of its lifetime before it expires (at most 60 s before).
TOKEN_RENEW_SHARE = 0.1


class ResponseFormatError(ValueError):
    """A 2xx body that is not what the API promises; retried like a transient failure."""


@dataclass(frozen=True)
class Token:
    """An access token and when (``time.monotonic()``) to stop using it."""

    value: str = field(repr=False)
    renew_at: float

    def is_fresh(self, now: float) -> bool:
        """:return: whether the token can still be used at monotonic time ``now``."""
        return now < self.renew_at


def parse_token(body: bytes, now: float) -> Token:
    """
    Read the token endpoint's answer.

    :param body: the token endpoint's JSON answer.
    :param now: monotonic time when the request was sent.
    :raises ResponseFormatError: when the body holds no usable token.
    """
    data = _json_object(body)
    value = data.get("access_token")
    expires_in = data.get("expires_in", 3600)
    if not isinstance(value, str) or not value:
        raise ResponseFormatError("the token response has no access_token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
        raise ResponseFormatError(f"the token response has an invalid expires_in: {expires_in!r}")
    return Token(value, now + expires_in - min(60.0, expires_in * TOKEN_RENEW_SHARE))


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """
    One message of a page kept as the bytes the API sent, with the fields a search reads decoded.

    Not tracked by the garbage collector (it holds no containers): a page makes 2,000 of them, and
    tracked objects made at that rate trigger collections that cost more than the decoding.

    :ivar raw: the message's JSON, as in the response's ``content`` array (re-encoded compactly
        only when it held a raw line break, so that it fits on one line).
    :ivar message_id: its ``messageId``.
    :ivar status: its ``status.status``, or ``None`` when it has none.
    """

    raw: bytes | msgspec.Raw
    message_id: str
    status: str | None


@dataclass(frozen=True)
class Page:
    """
    One page envelope of a search (or of a conversation or campaign listing), validated.

    ``content`` holds decoded messages (dicts), or :class:`RawMessage` objects for a raw read
    (see :func:`parse_page`); ``ids`` their ``messageId`` values, in the same order.
    """

    content: list[Any]
    number: int
    size: int
    total_elements: int
    total_pages: int
    ids: list[str] | None = None
    #: each message's ``status.date`` as sent (any JSON value, ``None`` when missing), for a raw read
    dates: list[Any] | None = None

    def message_ids(self) -> list[str]:
        """:return: the ``messageId`` of each message, in page order."""
        if self.ids is not None:
            return self.ids
        return [message["messageId"] for message in self.content]

    def status_dates(self) -> list[Any]:
        """:return: the ``status.date`` of each message as sent (``None`` when missing), in page order."""
        if self.dates is not None:
            return self.dates
        statuses = [message.get("status") for message in self.content]
        return [status.get("date") if type(status) is dict else None for status in statuses]


class _Head(msgspec.Struct, gc=False):
    """The fields of a message a raw read decodes."""

    messageId: str
    status: Any = None


class _Heads(msgspec.Struct):
    """A page's messages decoded only as far as :class:`_Head` (every other field skipped)."""

    content: list[_Head]


class _RawEnvelope(msgspec.Struct):
    """A page envelope whose messages stay undecoded; the numbers are checked by :func:`parse_page`."""

    content: list[msgspec.Raw]
    number: Any = None
    size: Any = None
    numberOfElements: Any = None
    totalElements: Any = None
    totalPages: Any = None


_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_heads_decoder = msgspec.json.Decoder(_Heads)
_compact_encoder = msgspec.json.Encoder()


def parse_page(body: bytes, *, page: int, size: int, raw: bool = False) -> Page:
    """
    Read a page envelope and check that it agrees with itself and with the request.

    :param page: the requested page number.
    :param size: the requested page size.
    :param raw: keep each message as its bytes (:class:`RawMessage`) and decode only its
        ``messageId`` and status: about a sixth of the work of decoding whole messages, and the
        output keeps every field byte for byte.
    :raises ResponseFormatError: when the body is malformed or the envelope contradicts itself.
    """
    content: list[Any]
    dates = None
    if raw:
        content, ids, dates, data = _raw_content(body)
    else:
        data = _json_object(body)
        content = data.get("content")  # type: ignore[assignment]
        if not isinstance(content, list) or not all(_is_message(item) for item in content):
            raise ResponseFormatError("the page has no list of messages with a string messageId in 'content'")
        ids = [message["messageId"] for message in content]
    fields = {}
    for key in ("number", "size", "numberOfElements", "totalElements", "totalPages"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ResponseFormatError(f"the page envelope has an invalid {key!r}: {value!r}")
        fields[key] = value
    total, pages = fields["totalElements"], fields["totalPages"]
    problems = []
    if fields["numberOfElements"] != len(content):
        problems.append(f"numberOfElements {fields['numberOfElements']} but {len(content)} items")
    if fields["number"] != page:
        problems.append(f"page {fields['number']} returned for page {page}")
    if fields["size"] != size:
        problems.append(f"size {fields['size']} returned for size {size}")
    if pages != math.ceil(total / size):
        problems.append(f"totalPages {pages} for totalElements {total} at size {size}")
    expected = max(0, min(size, total - page * size))
    if len(content) != expected:
        problems.append(f"{len(content)} items on page {page} of {pages} (expected {expected})")
    if problems:
        raise ResponseFormatError("contradicting page envelope: " + "; ".join(problems))
    return Page(content, page, size, total, pages, ids, dates)


def _raw_content(body: bytes) -> tuple[list[RawMessage], list[str], list[Any], dict[str, Any]]:
    """
    Split a page into :class:`RawMessage` objects, its ids, status dates and envelope's numbers.

    Two decodes of the whole body, each in one call: the envelope with its messages as raw bytes,
    then only each message's ``messageId`` and status (whose ``date`` the search's date check
    reads): a decode per message, with objects the garbage collector tracks, costs several times
    more (figures in ``benchmarks/RESULTS.md``).
    """
    try:
        envelope = _raw_envelope_decoder.decode(body)
        heads = _heads_decoder.decode(body).content
    except msgspec.ValidationError as exc:
        raise ResponseFormatError(
            f"the page has no list of messages with a string messageId in 'content' ({exc})"
        ) from None
    except msgspec.DecodeError as exc:  # not JSON at all, e.g. a truncated body
        raise ResponseFormatError(f"the body is not valid JSON ({exc})") from None
    items: list[Any] = envelope.content
    # A raw line break (JSON whitespace, as in pretty-printed JSON) would split a JSON Lines record:
    # such a message is re-encoded compactly. One scan of the body tells whether any has one.
    if b"\n" in body or b"\r" in body:
        items = [_compact(item) for item in items]
    ids = [head.messageId for head in heads]
    statuses = [head.status for head in heads]
    content = list(map(RawMessage, items, ids, map(_status_name, statuses)))
    dates = [status.get("date") if type(status) is dict else None for status in statuses]
    data = {
        "number": envelope.number,
        "size": envelope.size,
        "numberOfElements": envelope.numberOfElements,
        "totalElements": envelope.totalElements,
        "totalPages": envelope.totalPages,
    }
    return content, ids, dates, data


def _status_name(status: Any) -> str | None:
    name = status.get("status") if type(status) is dict else None
    return name if type(name) is str else None


def _compact(item: msgspec.Raw) -> bytes | msgspec.Raw:
    """:return: ``item``, re-encoded without whitespace when it holds a raw line break."""
    data = bytes(item)
    if b"\n" not in data and b"\r" not in data:
        return item
    return _compact_encoder.encode(msgspec.json.decode(data))


def parse_message(body: bytes) -> dict[str, Any]:
    """:raises ResponseFormatError: unless ``body`` is one voice message object."""
    data = _json_object(body)
    if not _is_message(data):
        raise ResponseFormatError("the body is not a voice message with a string messageId")
    return data


def _is_message(item: object) -> bool:
    return isinstance(item, dict) and isinstance(item.get("messageId"), str)


#: msgspec, not ``json.loads``: decoding pages is the client's hottest path (``benchmarks/RESULTS.md``).
_json_decoder = msgspec.json.Decoder()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = _json_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ResponseFormatError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResponseFormatError(f"the body is a JSON {type(data).__name__}, not an object")
    return data
