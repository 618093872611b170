"""The emulator's message store: messages in creation order, built lazily, evolving over time.

Messages are kept sorted by (creation time, messageId), with a parallel list of creation times so a
date range is two bisections. Initial messages get strictly increasing creation times spread
uniformly (with jitter) over ``[start, end)``; their content is built on first use (or by the
background warm-up) and cached, together with its JSON encoding once the message is final.

Status progression: a message reaches its final status ``settle_seconds * settle_fraction`` seconds
after its reference time (the clock start for initial messages, the arrival time for messages added
later) and passes Queued, Initiated, Ringing, InProgress in equal steps before that. With
``settle_lag=(low, high)`` instead, as real calls do, it reaches it ``low + (high - low) *
settle_fraction`` seconds after its own creation (or after it was added, for a message added later
with a past creation time: a call the search shows late), so a range of the past is final while
calls created in the last ``high`` seconds are still in progress. ``status.date``
is always the creation time plus that status's offset in the call's own timeline, so it is
deterministic; the wall clock only decides which status is current.
"""

from __future__ import annotations

import bisect
import copy
import random
import time
from collections.abc import Callable, Iterable

import msgspec

from airflow_voicetrack.constants import STATUS_PROGRESSION
from airflow_voicetrack.emulator.data import (
    MessageRecord,
    build_message,
    continues_conversation,
    conversation_root_id,
    message_digest,
    random_uuid,
)

_encode = msgspec.json.encode


def check_settle_lag(settle_lag: tuple[float, float]) -> tuple[float, float]:
    """Validate ``(low, high)`` seconds of ``--settle-lag``; return it.

    :raises ValueError: naming the flag and the rule.
    """
    low, high = settle_lag
    if not 0 <= low <= high or high <= 0:
        raise ValueError(
            f"settle lag must be MIN:MAX seconds with 0 <= MIN <= MAX and MAX > 0, got {low}:{high}"
        )
    return float(low), float(high)


def parse_settle_lag(text: str) -> tuple[float, float]:
    """Parse ``"MIN:MAX"`` (or one number for both) seconds of ``--settle-lag``.

    :raises ValueError: naming the flag and the expected form.
    """
    low, sep, high = text.partition(":")
    try:
        return check_settle_lag((float(low), float(high if sep else low)))
    except ValueError as err:
        if str(err).startswith("settle lag"):
            raise
        raise ValueError(f"--settle-lag must be MIN:MAX seconds, e.g. 60:120, got {text!r}") from None


class Entry:
    """A message's place in the store; its content is built on demand.

    :param created_ms: creation time, epoch milliseconds.
    :param seq: sequence number the content is drawn from.
    :param ref: wall-clock time its status progression starts from; ``None`` = the store's clock start.
    :param record: prebuilt content (for inserted copies), else built lazily.
    """

    __slots__ = ("created_ms", "json", "record", "ref", "seq")

    def __init__(
        self, created_ms: int, seq: int, ref: float | None = None, record: MessageRecord | None = None
    ) -> None:
        self.created_ms = created_ms
        self.seq = seq
        self.ref = ref
        self.record = record
        #: cached JSON of the final document
        self.json: bytes | None = None


class Store:
    """All messages of one emulator run.

    :param seed: data set seed.
    :param count: number of initial messages.
    :param start_ms: start of the initial messages' creation times (epoch ms, inclusive).
    :param end_ms: end of the initial messages' creation times (epoch ms, exclusive).
    :param settle_seconds: seconds over which statuses reach their final value (0 = already final).
    :param arrival_rate: new messages per second created while the emulator runs (0 = none).
    :param settle_lag: ``(low, high)`` seconds: each message is final this long after its creation
        (see the module docstring); excludes ``settle_seconds``.
    :param clock: wall clock in epoch seconds (tests may pass a fake one).
    """

    def __init__(
        self,
        seed: int,
        count: int,
        start_ms: int,
        end_ms: int,
        *,
        settle_seconds: float = 0.0,
        arrival_rate: float = 0.0,
        settle_lag: tuple[float, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if count < 0:
            raise ValueError("messages must be >= 0")
        if settle_lag is not None:
            check_settle_lag(settle_lag)
            if settle_seconds > 0:
                raise ValueError("give settle_seconds or settle_lag, not both")
        span = end_ms - start_ms
        if count and span < count:
            raise ValueError("the time range must allow at least 1 ms per message")
        self.seed = seed
        self.count = count
        self.settle_seconds = settle_seconds
        self.settle_lag = settle_lag
        self.arrival_rate = arrival_rate
        self.clock = clock
        rnd = random.Random(seed).random
        step = span / count if count else 0.0
        # Strictly increasing times: creation order is also (time, messageId) order for these.
        self.times: list[int] = []
        last = start_ms - 1
        for i in range(count):
            t = max(start_ms + int((i + rnd()) * step), last + 1)
            self.times.append(t)
            last = t
        self.entries: list[Entry] = [Entry(t, i) for i, t in enumerate(self.times)]
        self.clock_start = clock()
        #: the latest start of any message's status progression
        self.latest_ref = self.clock_start
        self.next_seq = count
        self.arrived = 0
        #: bumped whenever messages are added or dropped
        self.version = 0
        #: lazily built lookups: messageId -> entry, conversationTrackingId -> entries
        self._index: tuple[dict[str, Entry], dict[str, list[Entry]]] | None = None
        self._unwarmed = 0
        #: initial messages deleted (``delete_during_paging``), restored by :meth:`reset`
        self._deleted: list[Entry] = []

    # -- content -------------------------------------------------------------------------------

    def record(self, entry: Entry) -> MessageRecord:
        """The entry's content, built on first use.

        :param entry: a stored entry.
        """
        rec = entry.record
        if rec is None:
            digest = message_digest(self.seed, entry.seq)
            conversation = self._conversation_of(entry.seq, digest)
            rec = entry.record = build_message(digest, entry.created_ms, conversation)
        return rec

    def _conversation_of(self, seq: int, digest: bytes) -> str:
        # Only initial messages continue the conversation of the one created just before them.
        while seq > 0 and seq < self.count and continues_conversation(digest):
            seq -= 1
            digest = message_digest(self.seed, seq)
        return conversation_root_id(digest)

    def warm(self, batch: int) -> bool:
        """Build and encode up to ``batch`` further messages; ``False`` once all are built.

        :param batch: how many to build in this call.
        """
        entries = self.entries
        end = min(self._unwarmed + batch, len(entries))
        for i in range(self._unwarmed, end):
            entry = entries[i]
            rec = self.record(entry)
            if entry.json is None:
                entry.json = _encode(rec.doc)
        self._unwarmed = end
        return end < len(entries)

    # -- status over time ----------------------------------------------------------------------

    def stage(self, entry: Entry, now: float) -> int | None:
        """Index into ``STATUS_PROGRESSION`` of the entry's current status, ``None`` when final.

        :param entry: a stored entry.
        :param now: wall-clock time, epoch seconds.
        """
        if self.settle_lag is not None:
            low, high = self.settle_lag
            final_after = low + (high - low) * self.record(entry).settle_fraction
            elapsed = now - max(entry.created_ms / 1000, entry.ref or 0.0)
        elif self.settle_seconds > 0:
            final_after = self.settle_seconds * self.record(entry).settle_fraction
            elapsed = now - (self.clock_start if entry.ref is None else entry.ref)
        else:
            return None
        if elapsed >= final_after:
            return None
        # A message created in the future (elapsed < 0) is Queued.
        return min(len(STATUS_PROGRESSION) - 1, max(0, int(elapsed / final_after * 4)))

    def status(self, entry: Entry, now: float) -> str:
        """The entry's current status.

        :param entry: a stored entry.
        :param now: wall-clock time, epoch seconds.
        """
        stage = self.stage(entry, now)
        return self.record(entry).final_status if stage is None else STATUS_PROGRESSION[stage]

    def doc(self, entry: Entry, now: float) -> dict:
        """The message object as the API shows it at ``now``.

        :param entry: a stored entry.
        :param now: wall-clock time, epoch seconds.
        """
        rec = self.record(entry)
        stage = self.stage(entry, now)
        return rec.doc if stage is None else rec.intermediate_doc(stage, entry.created_ms)

    def json(self, entry: Entry, now: float) -> bytes:
        """The message object's JSON at ``now`` (cached once final).

        :param entry: a stored entry.
        :param now: wall-clock time, epoch seconds.
        """
        stage = self.stage(entry, now)
        if stage is not None:
            return _encode(self.record(entry).intermediate_doc(stage, entry.created_ms))
        if entry.json is None:
            entry.json = _encode(self.record(entry).doc)
        return entry.json

    # -- lookups -------------------------------------------------------------------------------

    def index_range(self, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
        """Positions ``[lo, hi)`` of the entries created in ``[start_ms, end_ms)``.

        :param start_ms: inclusive start, ``None`` = unbounded.
        :param end_ms: exclusive end, ``None`` = unbounded.
        """
        lo = 0 if start_ms is None else bisect.bisect_left(self.times, start_ms)
        hi = len(self.times) if end_ms is None else bisect.bisect_left(self.times, end_ms)
        return lo, max(lo, hi)

    def conversation(self, conversation_id: str) -> list[Entry]:
        """The dial parts of one conversation in creation order (empty when unknown).

        :param conversation_id: a ``conversationTrackingId``.
        """
        conversations = self._build_index()[1]
        parts = conversations.get(conversation_id, ())
        return sorted(parts, key=lambda e: (e.created_ms, self.record(e).doc["messageId"]))

    def find(self, message_id: str) -> Entry | None:
        """The entry with this messageId, or ``None``.

        :param message_id: a ``messageId``.
        """
        return self._build_index()[0].get(message_id)

    def _build_index(self) -> tuple[dict[str, Entry], dict[str, list[Entry]]]:
        if self._index is None:
            self._index = ({}, {})
            for entry in self.entries:
                self._add_to_index(entry)
        return self._index

    def _add_to_index(self, entry: Entry) -> None:
        if self._index is not None:
            doc = self.record(entry).doc
            self._index[0][doc["messageId"]] = entry
            self._index[1].setdefault(doc["conversationTrackingId"], []).append(entry)

    # -- changes -------------------------------------------------------------------------------

    def _insert(self, entry: Entry) -> None:
        t = entry.created_ms
        lo = bisect.bisect_left(self.times, t)
        hi = bisect.bisect_right(self.times, t)
        message_id = self.record(entry).doc["messageId"]
        pos = lo
        while pos < hi and self.record(self.entries[pos]).doc["messageId"] < message_id:
            pos += 1
        self.times.insert(pos, t)
        self.entries.insert(pos, entry)
        if pos < self._unwarmed:
            self._unwarmed += 1
        self.version += 1
        self._add_to_index(entry)

    def _new_entry(self, created_ms: int, ref: float) -> Entry:
        entry = Entry(created_ms, self.next_seq, ref)
        self.next_seq += 1
        self.latest_ref = max(self.latest_ref, ref)
        return entry

    def is_settled(self, now: float) -> bool:
        """Whether every message has reached its final status, so results no longer change with time.

        :param now: wall-clock time, epoch seconds.
        """
        if self.settle_lag is not None:
            latest = max(self.times[-1] / 1000 if self.times else 0.0, self.latest_ref)
            return now >= latest + self.settle_lag[1]
        return self.settle_seconds <= 0 or now >= self.latest_ref + self.settle_seconds

    def catch_up(self, now: float) -> int:
        """Add the messages that arrived (``arrival_rate``) up to ``now``; returns how many.

        Arrival ``k`` is created at ``clock_start + k / arrival_rate``, so arrivals are deterministic.

        :param now: wall-clock time, epoch seconds.
        """
        if self.arrival_rate <= 0:
            return 0
        due = int((now - self.clock_start) * self.arrival_rate)
        added = 0
        while self.arrived < due:
            self.arrived += 1
            at = self.clock_start + self.arrived / self.arrival_rate
            self._insert(self._new_entry(int(at * 1000), at))
            added += 1
        return added

    def add_messages(self, count: int, created_ms: int | None = None) -> list[Entry]:
        """
        Add ``count`` new messages created at ``created_ms`` (default: now).

        Their statuses start progressing now.

        :param count: how many.
        :param created_ms: creation time, epoch ms; ``None`` = now.
        """
        now = self.clock()
        at = int(now * 1000) if created_ms is None else created_ms
        added = [self._new_entry(at, now) for _ in range(count)]
        for entry in added:
            self._insert(entry)
        return added

    def add_copies(self, sources: Iterable[Entry], count: int, created_ms: int) -> list[Entry]:
        """
        Add ``count`` new messages copied from ``sources`` (cycled).

        Same content, new ``messageId``/``conversationTrackingId``, created at ``created_ms``,
        statuses starting now.

        :param sources: entries to copy (at least one).
        :param count: how many to add.
        :param created_ms: their creation time, epoch ms.
        """
        pool = list(sources)
        now = self.clock()
        added = []
        for k in range(count):
            source = self.record(pool[k % len(pool)])
            entry = self._new_entry(created_ms, now)
            digest = message_digest(self.seed, entry.seq)
            message_id, conversation_id = random_uuid(digest), conversation_root_id(digest)
            doc = copy.deepcopy(source.doc)
            doc["messageId"], doc["conversationTrackingId"] = message_id, conversation_id
            for rec in doc["recordings"]:
                rec["voiceTrackingIds"], rec["conversationTrackingId"] = [message_id], conversation_id
            entry.record = MessageRecord(doc, source.campaign_id, source.settle_fraction, source.ringing_s)
            self._insert(entry)
            added.append(entry)
        return added

    def delete(self, entries: Iterable[Entry]) -> int:
        """Delete ``entries`` from the store (as if the service had removed them); returns how many.

        Initial messages come back on :meth:`reset`; messages added later are gone for good.

        :param entries: stored entries.
        """
        doomed = {id(e) for e in entries}
        kept = [e for e in self.entries if id(e) not in doomed]
        removed = len(self.entries) - len(kept)
        if removed:
            self._deleted += [e for e in self.entries if id(e) in doomed and e.seq < self.count]
            self.entries = kept
            self.times = [e.created_ms for e in kept]
            self.version += 1
            self._index = None
            self._unwarmed = 0
        return removed

    def reset(self) -> None:
        """Restart the status clock, drop every message added after start and restore deleted ones."""
        kept = [e for e in self.entries if e.seq < self.count]
        if self._deleted:
            # Initial messages are in seq order (their creation times increase with it).
            kept = sorted([*kept, *self._deleted], key=lambda e: e.seq)
            self._deleted = []
        self.entries = kept
        self.times = [e.created_ms for e in kept]
        self.clock_start = self.latest_ref = self.clock()
        self.next_seq = self.count
        self.arrived = 0
        self.version += 1
        self._index = None
        self._unwarmed = 0
