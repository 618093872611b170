"""The accounting of a search: windows, page plans, de-duplication, totals, progress."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_voicetrack.exceptions import VoiceTrackConsistencyError, VoiceTrackDateFilterError
from airflow_voicetrack.protocol.bodies import Page, parse_page
from airflow_voicetrack.protocol.calls import Flow, Log, request_flow
from airflow_voicetrack.protocol.http import Request
from airflow_voicetrack.protocol.idset import IdSet
from airflow_voicetrack.protocol.limits import LimitStats
from airflow_voicetrack.protocol.query import format_datetime

if TYPE_CHECKING:
    from airflow_voicetrack.protocol.settings import Settings


#: Log search progress every this many pages.
PROGRESS_EVERY_PAGES = 10

#: How much earlier than the searched window's start a message's ``status.date`` may be before the
#: search fails as unfiltered (:class:`WindowStartCheck`). The range applies to the creation time the
#: API records, while ``status.date`` is stamped by whichever of Routee's systems changed the status
#: (API, telephony platform), whose clocks can disagree by seconds; the documented date examples are
#: to the minute (``2016-08-19T15:00Z``). A few minutes absorb that without a false alarm, and a
#: search whose date filter is ignored returns messages days to years older, which still trip it.
DATE_FILTER_TOLERANCE = timedelta(minutes=5)


@dataclass
class SearchStats:
    """
    Counters of one search, exposed as the hook's ``last_search_stats``.

    ``total_elements`` is the sum of each window's latest ``totalElements``; ``limits`` is what the
    search saw of the connection's limiter (effective concurrency, pauses, 429s, retries).
    """

    windows: int = 0
    pages: int = 0
    records: int = 0
    duplicates: int = 0
    total_elements: int = 0
    refetched_pages: int = 0
    pages_planned: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    limits: LimitStats = field(default_factory=LimitStats)

    def as_dict(self) -> dict[str, Any]:
        """:return: the counters (``records_per_second`` included) as a plain dict."""
        return {
            "windows": self.windows,
            "pages": self.pages,
            "records": self.records,
            "duplicates": self.duplicates,
            "total_elements": self.total_elements,
            "refetched_pages": self.refetched_pages,
            "pages_planned": self.pages_planned,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds, 1) if self.seconds else 0.0,
            **self.limits.as_dict(),
        }

    def finish(self) -> None:
        """Record the search's duration."""
        self.seconds = time.monotonic() - self.started

    def progress_due(self) -> bool:
        """:return: whether a progress line is due (every :data:`PROGRESS_EVERY_PAGES` pages)."""
        return self.pages % PROGRESS_EVERY_PAGES == 0

    def progress_line(self) -> str:
        """:return: pages done of those known so far, records, records per second."""
        elapsed = time.monotonic() - self.started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return (
            f"voice tracking: {self.pages}/{self.pages_planned} pages, {self.records} records, "
            f"{rate:.0f} records/s"
        )


class PagePlan:
    """
    Which page of a listing to fetch next.

    Without ``numbers``: page 0 alone first, then pages 1 up to the last, following ``totalPages``
    when a later page reports more (messages were added while paging: reading up to the last page
    the first page announced would miss the messages pushed past it). With ``numbers``: those pages.
    """

    def __init__(self, numbers: Iterable[int] | None = None) -> None:
        #: whether this plan reads the whole listing (rather than pages to read again)
        self.is_first_pass = numbers is None
        self._numbers = None if numbers is None else list(numbers)
        self._cursor = 0
        self._page_count = 1

    def has_next(self) -> bool:
        """:return: whether :meth:`next_number` would return a page now."""
        if self._numbers is not None:
            return self._cursor < len(self._numbers)
        return self._cursor < self._page_count

    def next_number(self) -> int | None:
        """:return: the next page to request, or ``None`` when none is known now."""
        if not self.has_next():
            return None
        self._cursor += 1
        return self._cursor - 1 if self._numbers is None else self._numbers[self._cursor - 1]

    def seen(self, page: Page) -> None:
        """Take note of a fetched page's ``totalPages``."""
        self._page_count = page.total_pages if page.number == 0 else max(self._page_count, page.total_pages)


class WindowTally:
    """
    Accounting for one window of a search (or a whole listing without windows).

    Messages are de-duplicated by ``messageId``. When messages are added while paging, later pages
    shift: that repeats messages (dropped here), and pushes messages past the last page the first
    page announced (:class:`PagePlan` follows the growing ``totalPages``). Pages fetched
    concurrently can also be read out of order around an insertion, so that a message moves from a
    page read later into a page read earlier: such pages (a lower page reported a larger total)
    are listed by :meth:`stale_pages` to be read once more. At the end, the distinct messages must
    number at least the ``totalElements`` of the first page (nothing that existed is missing) and
    at most the largest ``totalElements`` seen.

    :param stats: the search's counters, updated as pages are accepted.
    """

    def __init__(self, stats: SearchStats) -> None:
        self.stats = stats
        self.seen = IdSet()
        self._totals: dict[int, int] = {}
        self._first_total: int | None = None

    def accept(self, page: Page) -> list[Any]:
        """:return: the page's messages not seen before in this window, in page order."""
        if self._first_total is None:
            self._first_total = page.total_elements
            self.stats.pages_planned += max(1, page.total_pages)
            self.seen = IdSet(page.total_elements)
        elif page.number in self._totals:
            self.stats.refetched_pages += 1
        self._totals[page.number] = page.total_elements
        self.stats.pages += 1
        flags = self.seen.add_page(page.message_ids())
        fresh = page.content if all(flags) else [m for m, new in zip(page.content, flags, strict=True) if new]
        self.stats.duplicates += len(flags) - len(fresh)
        self.stats.records += len(fresh)
        return fresh

    def stale_pages(self) -> list[int]:
        """:return: pages read before an insertion that a lower page read after it may have shifted."""
        stale, highest = [], -1
        for number in sorted(self._totals):
            if self._totals[number] < highest:
                stale.append(number)
            highest = max(highest, self._totals[number])
        return stale

    def finish(self) -> str | None:
        """:return: a description of the count mismatch, or ``None`` when the count is right."""
        first = self._first_total or 0
        largest = max(self._totals.values(), default=0)
        self.stats.windows += 1
        self.stats.total_elements += largest
        if first <= len(self.seen) <= largest:
            return None
        return (
            f"{len(self.seen)} distinct messages read but the API reported totalElements={first} "
            f"at the start and {largest} at most"
        )


class Budget:
    """
    How many more messages a search with a ``limit`` may yield, and so which pages it may request.

    Without a limit every page may be requested. With one, a page is requested only while the pages
    already requested but not yet read (each up to ``page_size`` messages) cannot fill what is left
    of the limit: when ``limit <= page_size`` a search makes exactly one page request.

    :param limit: the most messages to yield, or ``None``.
    :param page_size: messages per page.
    """

    def __init__(self, limit: int | None, page_size: int) -> None:
        self.limit = limit
        self.page_size = page_size
        self.yielded = 0

    @property
    def exhausted(self) -> bool:
        """Whether the limit has been reached."""
        return self.limit is not None and self.yielded >= self.limit

    def allows(self, unread_pages: int) -> bool:
        """:return: whether one more page may be requested while ``unread_pages`` are outstanding."""
        return self.limit is None or unread_pages * self.page_size < self.limit - self.yielded

    def take(self, messages: list[Any]) -> list[Any]:
        """:return: the head of ``messages`` that fits in the limit, counted as yielded."""
        if self.limit is not None:
            messages = messages[: max(0, self.limit - self.yielded)]
        self.yielded += len(messages)
        return messages


#: Builds the request of one page: ``(page, size) -> Request``.
PageRequest = Callable[[int, int], Request]
#: One window of a search (or a whole listing): ``(label, page request builder, window start)``;
#: the start is ``None`` when the window is not bounded below (nothing to check the dates against).
PageSource = tuple[str, PageRequest, datetime | None]


class WindowStartCheck:
    """
    Fails a search whose date range the service did not apply, at almost no cost.

    A call cannot change status before it exists, so a message of the window ``[start, end)`` has a
    ``status.date`` at or after ``start``. One earlier by more than :data:`DATE_FILTER_TOLERANCE`
    means the date filter was not applied (a service that does not know the parameters' names
    ignores them and returns the whole history): :meth:`check` raises
    :class:`~airflow_voicetrack.exceptions.VoiceTrackDateFilterError` on the first one. A missing
    ``status.date``, one that is not a date-time, or one without a time zone is skipped.

    The API sends UTC dates ending in ``Z``, which sort as text in time order to the second: when
    every date of a page is such a string, the page costs one ``min`` and one scan in C, a small share
    of decoding the page; only a page whose earliest date is
    near or before the threshold, or with other forms (offsets, missing dates), is parsed date by date.

    :param start: the window's start, aware.
    :param label: the window, for the error message.
    """

    def __init__(self, start: datetime, label: str) -> None:
        self.start = start
        self.label = label
        self.threshold = start - DATE_FILTER_TOLERANCE
        self._prefix = self.threshold.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")

    def check(self, page: Page) -> None:
        """:raises VoiceTrackDateFilterError: on the page's first message dated before the window."""
        dates = page.status_dates()
        if not dates:
            return
        try:
            earliest = min(dates)
        except TypeError:  # a missing date, or one that is not a string
            earliest = None
        if type(earliest) is str and earliest[:19] >= self._prefix and _all_utc(dates):
            return
        prefix = self._prefix
        suspects = [d for d in dates if type(d) is str and (d[:19] < prefix or d[-1:] != "Z")]
        for date in suspects:
            moment = _aware_datetime(date)
            if moment is not None and moment < self.threshold:
                message_id = page.message_ids()[dates.index(date)]
                raise VoiceTrackDateFilterError(message_id, date, format_datetime(self.start), self.label)


def _all_utc(dates: list[str]) -> bool:
    """:return: whether every date (all strings) ends in ``Z``, checked in two scans of one text."""
    text = "\n".join(dates) + "\n"
    # One line break per date (none inside one), each right after a Z.
    return text.count("\n") == len(dates) == text.count("Z\n")


def _aware_datetime(text: str) -> datetime | None:
    """:return: ``text`` as an aware datetime, or ``None`` when it is not one (naive, malformed)."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and moment.utcoffset() is not None else None


@dataclass(frozen=True)
class PageFetch:
    """One page a driver is to fetch: page ``number`` of window ``window`` (its index)."""

    window: int
    number: int


@dataclass
class _Window:
    label: str
    page_request: PageRequest
    tally: WindowTally
    dates: WindowStartCheck | None
    plan: PagePlan = field(default_factory=PagePlan)
    #: pages requested by the current plan and not read yet, in plan order
    outstanding: deque[int] = field(default_factory=deque)
    #: pages fetched but not read yet (a lower page is still on its way)
    arrived: dict[int, Page] = field(default_factory=dict)


class SearchRun:
    """
    Everything a search decides, free of I/O: which pages to fetch, in which order to read them.

    A driver asks :meth:`to_fetch` which pages to start (it runs each :meth:`flow`), hands each page
    to :meth:`arrived` as it comes, and yields what :meth:`ready` returns, until :attr:`done`.

    The windows of the range are read in order, each page 0 first (it says how many pages follow),
    then its other pages. Pages are requested across window boundaries: while a window waits for
    its page 0, or has all its pages requested, page 0 of the coming windows and then their pages
    are requested too, so that ``max_concurrency`` requests stay in flight over the whole range.
    Messages still come out in window and page order; pages of coming windows are requested only
    while fewer than ``2 * max_concurrency`` pages are unread, which bounds the pages held.
    After a window's pages, pages read before an insertion are read again
    (:meth:`WindowTally.stale_pages`), and its count is checked against ``totalElements``: a
    mismatch is logged, or raised when ``strict``.

    Every page of a window with a start is checked for messages dated before it
    (:class:`WindowStartCheck`): a date range the service ignored fails the search before a message
    of that page is yielded.

    :param sources: ``(label, page request builder, window start)`` per window, in order.
    :param settings: retry limits and secrets for the page requests.
    :param page_size: messages per page.
    :param limit: the most messages to yield, or ``None``; no page is requested that the limit
        cannot need, and a search stopped by its limit skips the count check.
    :param strict: raise :class:`VoiceTrackConsistencyError` on a count mismatch.
    :param raw: read pages with :class:`~airflow_voicetrack.protocol.bodies.RawMessage` objects.
    :param log: where progress, re-reads and mismatches are logged.
    """

    def __init__(
        self,
        sources: Sequence[PageSource],
        settings: Settings,
        *,
        page_size: int,
        limit: int | None = None,
        strict: bool = False,
        raw: bool = False,
        log: Log | None = None,
    ) -> None:
        self.stats = SearchStats()
        self.settings = settings
        self.page_size = page_size
        self.strict = strict
        self.raw = raw
        self.log = log or logging.getLogger(__name__)
        self._budget = Budget(limit, page_size)
        self._windows = [
            _Window(
                label,
                builder,
                WindowTally(self.stats),
                None if start is None else WindowStartCheck(start, label),
            )
            for label, builder, start in sources
        ]
        self._current = 0
        self._in_flight = 0
        #: pages requested and not read yet (in flight or arrived)
        self._unread = 0
        #: whether the search is over: every window read, or the limit reached
        self.done = self._budget.exhausted or not self._windows
        if self.done:
            self.stats.finish()

    def to_fetch(self) -> list[PageFetch]:
        """:return: the pages to request now, earliest needed first."""
        fetches: list[PageFetch] = []
        concurrency = self.settings.max_concurrency
        for index in range(self._current, len(self._windows)) if not self.done else ():
            window = self._windows[index]
            # Pages of coming windows are held until the current one is read: cap how many.
            ahead = index > self._current
            while (
                self._in_flight < concurrency
                and not (ahead and self._unread >= 2 * concurrency)
                and self._budget.allows(self._unread)
                and (number := window.plan.next_number()) is not None
            ):
                fetches.append(PageFetch(index, number))
                window.outstanding.append(number)
                self._in_flight += 1
                self._unread += 1
        return fetches

    def step(self, arrived: Iterable[tuple[PageFetch, Page]]) -> tuple[list[PageFetch], list[Any]]:
        """
        Take the pages that arrived; return the pages to request now and the messages to yield.

        A driver's whole loop: start the fetches, yield the messages, wait for a page, step again.
        """
        for fetch, page in arrived:
            self.arrived(fetch, page)
        messages = self.ready()
        return self.to_fetch(), messages

    def flow(self, fetch: PageFetch) -> Flow[Page]:
        """:return: the flow that fetches and parses the page ``fetch`` names."""
        request = self._windows[fetch.window].page_request(fetch.number, self.page_size)
        parse = partial(parse_page, page=fetch.number, size=self.page_size, raw=self.raw)
        return request_flow(self.settings, request, parse, self.log, self.stats.limits)

    def arrived(self, fetch: PageFetch, page: Page) -> None:
        """Take a fetched page; it is read when the pages before it have been."""
        window = self._windows[fetch.window]
        self._in_flight -= 1
        window.plan.seen(page)
        window.arrived[fetch.number] = page

    def ready(self) -> list[Any]:
        """:return: the messages that can be yielded now, in window and page order."""
        messages: list[Any] = []
        while not self.done:
            window = self._windows[self._current]
            if window.outstanding:
                page = window.arrived.pop(window.outstanding[0], None)
                if page is None:
                    break  # the next page in order is still on its way
                window.outstanding.popleft()
                self._unread -= 1
                if window.dates is not None:
                    window.dates.check(page)
                messages += self._budget.take(window.tally.accept(page))
                if self._budget.exhausted:
                    # Stopped by the limit: the window's count is incomplete by design.
                    self.stats.records = self._budget.yielded
                    self._finish()
                elif self.stats.progress_due():
                    self.log.info(self.stats.progress_line())
            elif window.plan.has_next():
                break  # page 0 is on its way (or pages wait for a free slot)
            else:
                self._end_pass(window)
        return messages

    def _end_pass(self, window: _Window) -> None:
        stale = window.tally.stale_pages() if window.plan.is_first_pass else []
        if stale:
            self.log.info("%s: messages were added while paging; reading pages %s again", window.label, stale)
            window.plan = PagePlan(stale)
            return
        mismatch = window.tally.finish()
        if mismatch is not None:
            if self.strict:
                raise VoiceTrackConsistencyError(f"{window.label}: {mismatch}")
            self.log.warning("%s: %s", window.label, mismatch)
        window.tally.seen = IdSet()  # its memory is not needed any more
        self._current += 1
        if self._current == len(self._windows):
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self.stats.finish()
