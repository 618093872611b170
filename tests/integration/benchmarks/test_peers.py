"""The peer benchmark's checks of what a variant wrote, and its in-flight count, on known input."""

from __future__ import annotations

from benchmarks.peers import check_output, in_flight

TRUTH = {"a": {"messageId": "a", "to": "1"}, "b": {"messageId": "b", "to": "2"}}


def test_output_equal_to_the_truth_passes_and_counts_records_as_sent() -> None:
    status, content = check_output(iter([TRUTH["b"], TRUTH["a"]]), 2, TRUTH)
    assert status == "ok"
    assert content == {"same_as_api": 2, "compared": 2, "keys": ["messageId", "to"]}


def test_renamed_keys_keep_the_ids_but_not_the_records() -> None:
    rows = [{"message_id": "a", "to": "1", "_dlt_id": "x"}, {"message_id": "b", "to": "2", "_dlt_id": "y"}]
    status, content = check_output(iter(rows), 2, TRUTH)
    assert status == "ok"
    assert content["same_as_api"] == 0


def test_duplicates_missing_and_unexpected_ids_are_reported() -> None:
    status, _ = check_output(iter([TRUTH["a"], TRUTH["a"], {"messageId": "z"}]), 3, TRUTH)
    assert status == "wrong ids: 1 duplicates, 1 missing, 1 unexpected"


def test_a_counting_variant_is_checked_by_its_count() -> None:
    assert check_output(None, 2, TRUTH) == ("ok", {})
    assert check_output(None, 3, TRUTH) == ("wrong count: 3 of 2", {})


def test_in_flight_counts_overlapping_spans() -> None:
    times, counts = in_flight([(10.0, 15.0), (12.0, 17.0), (16.0, 18.0)], step=1.0)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert counts == [1, 1, 2, 2, 2, 1, 2, 1, 0]
