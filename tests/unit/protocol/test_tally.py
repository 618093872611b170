from __future__ import annotations

from airflow_voicetrack.protocol import MAX_WINDOW_REPASSES, Page, SearchStats, WindowTally


def page(ids, number=0, total=None, size=10):
    total = len(ids) if total is None else total
    return Page([{"messageId": i} for i in ids], number, size, total, -(-total // size))


def test_duplicates_are_dropped_and_counted():
    tally = WindowTally(SearchStats())
    tally.start_pass()
    assert [m["messageId"] for m in tally.accept(page(["a", "b"], total=3))] == ["a", "b"]
    assert [m["messageId"] for m in tally.accept(page(["b", "c"], number=1, total=3))] == ["c"]
    assert tally.stats.duplicates == 1 and tally.stats.records == 3


def test_stable_complete_window_needs_no_second_pass():
    tally = WindowTally(SearchStats())
    tally.start_pass()
    tally.accept(page(["a", "b"]))
    assert not tally.needs_another_pass() and tally.finish() is None


def test_total_that_changed_while_paging_asks_for_another_pass():
    tally = WindowTally(SearchStats())
    tally.start_pass()
    tally.accept(page(["a", "b"], total=3, size=2))
    tally.accept(page(["c", "d"], number=1, total=4, size=2))
    assert tally.needs_another_pass()


def test_fewer_messages_than_total_asks_for_another_pass():
    tally = WindowTally(SearchStats())
    tally.start_pass()
    tally.accept(page(["a"], total=2))
    assert tally.needs_another_pass()


def test_passes_are_bounded_and_the_mismatch_is_reported():
    tally = WindowTally(SearchStats())
    for _ in range(MAX_WINDOW_REPASSES + 1):
        tally.start_pass()
        tally.accept(page(["a"], total=2))
    assert not tally.needs_another_pass()
    assert tally.finish() == "1 distinct messages read but the API reported totalElements=2 after 4 pass(es)"


def test_stats_report_pages_records_and_rate():
    stats = SearchStats()
    tally = WindowTally(stats)
    tally.start_pass()
    tally.accept(page(["a", "b"], total=2))
    tally.finish()
    stats.finish()
    result = stats.as_dict()
    assert (result["pages"], result["records"], result["total_elements"], result["windows"]) == (1, 2, 2, 1)
    assert "1/1 pages, 2 records" in stats.progress_line()
