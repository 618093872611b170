from __future__ import annotations

from airflow_voicetrack.protocol import IdSet, Page, PagePlan, SearchStats, WindowTally


def page(ids, number=0, total=None, size=10):
    total = len(ids) if total is None else total
    return Page([{"messageId": i} for i in ids], number, size, total, -(-total // size))


def test_duplicates_are_dropped_and_counted():
    tally = WindowTally(SearchStats())
    assert [m["messageId"] for m in tally.accept(page(["a", "b"], total=3, size=2))] == ["a", "b"]
    assert [m["messageId"] for m in tally.accept(page(["b", "c"], number=1, total=4, size=2))] == ["c"]
    assert tally.stats.duplicates == 1 and tally.stats.records == 3


def test_complete_window_has_no_mismatch():
    tally = WindowTally(SearchStats())
    tally.accept(page(["a", "b"]))
    assert tally.stale_pages() == [] and tally.finish() is None


def test_fewer_messages_than_the_first_total_is_a_mismatch():
    tally = WindowTally(SearchStats())
    tally.accept(page(["a"], total=2, size=1))
    assert tally.finish() == (
        "1 distinct messages read but the API reported totalElements=2 at the start and 2 at most"
    )


def test_messages_added_while_paging_are_not_a_mismatch():
    tally = WindowTally(SearchStats())
    tally.accept(page(["a", "b"], total=4, size=2))
    tally.accept(page(["b", "c"], number=1, total=6, size=2))
    tally.accept(page(["c", "d"], number=2, total=6, size=2))
    assert tally.finish() is None


def test_page_read_before_an_insertion_behind_a_lower_page_is_stale():
    tally = WindowTally(SearchStats())
    tally.accept(page(["a"], number=0, total=4, size=1))
    tally.accept(page(["c"], number=2, total=4, size=1))  # read early, concurrently
    tally.accept(page(["b"], number=1, total=5, size=1))  # read after an insertion
    assert tally.stale_pages() == [2]


def test_plan_reads_page_zero_alone_then_follows_a_growing_page_count():
    plan = PagePlan()
    assert (plan.next_number(), plan.next_number()) == (0, None)
    plan.seen(page(["a", "b"], total=4, size=2))
    assert (plan.next_number(), plan.next_number()) == (1, None)
    plan.seen(page(["b", "c"], number=1, total=6, size=2))
    assert (plan.next_number(), plan.next_number()) == (2, None)


def test_plan_with_numbers_reads_those():
    plan = PagePlan([3, 5])
    assert [plan.next_number(), plan.next_number(), plan.next_number()] == [3, 5, None]
    assert not plan.is_first_pass


def test_stats_report_pages_records_and_rate():
    stats = SearchStats()
    tally = WindowTally(stats)
    tally.accept(page(["a", "b"], total=2))
    tally.finish()
    stats.finish()
    result = stats.as_dict()
    assert (result["pages"], result["records"], result["total_elements"], result["windows"]) == (1, 2, 2, 1)
    assert "1/1 pages, 2 records" in stats.progress_line()


def test_id_set_is_exact_through_growth_and_within_a_page():
    ids = IdSet(expected=10)
    first = [f"id-{n}" for n in range(5000)]  # far past the expected size: the table grows
    assert ids.add_page(first) == [True] * 5000
    assert ids.add_page(["id-0", "new", "new", "id-4999"]) == [False, True, False, False]
    assert len(ids) == 5001 and "id-1234" in ids and "id-5000" not in ids
    assert ids.unconfirmed == 0  # every repeat was among the latest pages' ids
