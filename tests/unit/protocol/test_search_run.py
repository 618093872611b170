"""SearchRun, the I/O-free core of a search: which pages to fetch, in which order messages come out."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from airflow_voicetrack.exceptions import VoiceTrackConsistencyError
from airflow_voicetrack.protocol import Page, PageFetch, Request, SearchRun, Settings

SETTINGS = Settings(
    "http://127.0.0.1:1", "http://127.0.0.1:1/oauth/token", "app", "secret", max_concurrency=4
)


def listing(window: int, total: int, size: int) -> Callable[[int, int], Page]:
    """A window of ``total`` messages named ``w<window>-<n>``, served in pages of ``size``."""

    def page(number: int, total_now: int = total) -> Page:
        ids = [f"w{window}-{n}" for n in range(number * size, min(total_now, (number + 1) * size))]
        return Page([{"messageId": i} for i in ids], number, size, total_now, -(-total_now // size))

    return page


def run_of(totals: list[int], size: int = 2, **kw) -> tuple[SearchRun, list[Callable[..., Page]]]:
    sources = [
        (f"window {i}", lambda page, size: Request("POST", "http://x"), None) for i in range(len(totals))
    ]
    servers = [listing(i, total, size) for i, total in enumerate(totals)]
    return SearchRun(sources, SETTINGS, page_size=size, log=logging.getLogger("test"), **kw), servers


def drive(run: SearchRun, serve: Callable[[PageFetch], Page], *, lifo: bool = False):
    """Run like a driver, with every request in flight answered in order (or newest first)."""
    in_flight: list[PageFetch] = []
    out: list[str] = []
    started: list[list[PageFetch]] = []
    while not run.done:
        fetches = run.to_fetch()
        started.append(fetches)
        in_flight += fetches
        assert in_flight, "the search stalled"
        assert len(in_flight) <= SETTINGS.max_concurrency
        fetch = in_flight.pop() if lifo else in_flight.pop(0)
        run.arrived(fetch, serve(fetch))
        out += [m["messageId"] for m in run.ready()]
    return out, started


def test_page_zero_of_coming_windows_is_fetched_while_the_first_is_on_its_way():
    run, _ = run_of([5, 5, 5, 5, 5])
    first = run.to_fetch()
    assert [(f.window, f.number) for f in first] == [(0, 0), (1, 0), (2, 0), (3, 0)]


@pytest.mark.parametrize("lifo", [False, True], ids=["in order", "newest first"])
def test_messages_come_out_in_window_and_page_order_whatever_the_arrival_order(lifo):
    totals = [5, 0, 7, 1, 4]
    run, servers = run_of(totals)
    out, _ = drive(run, lambda f: servers[f.window](f.number), lifo=lifo)
    assert out == [f"w{w}-{n}" for w, total in enumerate(totals) for n in range(total)]
    assert run.stats.as_dict()["pages"] == sum(max(1, -(-t // 2)) for t in totals)
    assert run.stats.windows == len(totals) and run.stats.duplicates == 0


def test_requests_stay_in_flight_across_window_boundaries():
    run, servers = run_of([8] * 6, size=2)
    _, started = drive(run, lambda f: servers[f.window](f.number))
    # after the start, every answered page is replaced at once: 4 in flight until the tail
    assert [len(batch) for batch in started[:12]] == [4] + [1] * 11


def test_a_limit_within_one_page_makes_one_request():
    run, servers = run_of([5, 5], size=4, limit=3)
    out, started = drive(run, lambda f: servers[f.window](f.number))
    assert out == ["w0-0", "w0-1", "w0-2"]
    assert sum(len(batch) for batch in started) == 1


def test_limit_zero_makes_no_request():
    run, _ = run_of([5], limit=0)
    assert run.done and run.to_fetch() == []


def test_pages_read_before_an_insertion_are_read_again_and_nothing_is_lost_or_twice():
    before, after = ["a", "b", "c", "d"], ["a", "x", "b", "c", "d"]  # "x" inserted while paging
    served: list[int] = []

    def serve(fetch: PageFetch) -> Page:
        # Newest first: pages 3 and 2 are read before the insertion, page 1 after it.
        served.append(fetch.number)
        ids = before if fetch.number in (2, 3) and served.count(fetch.number) == 1 else after
        return Page([{"messageId": ids[fetch.number]}], fetch.number, 1, len(ids), len(ids))

    run, _ = run_of([4], size=1)
    out, _ = drive(run, serve, lifo=True)
    assert sorted(out) == sorted(after)  # everything, once
    assert served.count(2) == served.count(3) == 2 and run.stats.refetched_pages == 2
    assert run.stats.duplicates == 2


def test_a_count_mismatch_raises_when_strict():
    run, _ = run_of([3], size=2, strict=True)
    short = {0: Page([{"messageId": "a"}, {"messageId": "b"}], 0, 2, 3, 2), 1: Page([], 1, 2, 3, 2)}
    with pytest.raises(VoiceTrackConsistencyError, match="2 distinct messages read but the API reported"):
        drive(run, lambda f: short[f.number])
