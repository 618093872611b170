"""The synthetic data set, status progression, arrivals and faults schedule (no sockets)."""

from __future__ import annotations

import re

import pytest

from airflow_voicetrack.constants import FINAL_STATUSES, STATUS_PROGRESSION
from airflow_voicetrack.emulator.app import route_template
from airflow_voicetrack.emulator.faults import FaultSchedule, FaultSettings, retry_after_header
from airflow_voicetrack.emulator.query import parse_datetime_ms
from airflow_voicetrack.emulator.store import Store, parse_settle_lag

START = parse_datetime_ms("2026-11-01T00:00:00Z")
END = parse_datetime_ms("2026-11-08T00:00:00Z")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def docs(store: Store) -> list[dict]:
    return [store.record(e).doc for e in store.entries]


def test_same_seed_gives_the_same_data_and_another_seed_differs() -> None:
    a, b, c = (Store(seed, 300, START, END) for seed in (1, 1, 2))
    assert docs(a) == docs(b)
    assert a.times == b.times
    assert [d["messageId"] for d in docs(a)] != [d["messageId"] for d in docs(c)]


def test_creation_times_are_strictly_increasing_inside_the_range() -> None:
    store = Store(1, 5000, START, END)
    assert all(START <= t < END for t in store.times)
    assert all(x < y for x, y in zip(store.times, store.times[1:], strict=False))


def test_numbers_are_e164_without_plus_and_fields_are_realistic() -> None:
    all_docs = docs(Store(3, 2000, START, END))
    assert all(re.fullmatch(r"[1-9]\d{9,13}", d["to"]) for d in all_docs)
    assert len({d["country"] for d in all_docs}) >= 8
    assert len({d["campaign"] for d in all_docs}) >= 8
    completed = [d for d in all_docs if d["status"]["status"] == "Completed"]
    assert completed and all(d["duration"] > 0 and d["answeredBy"] for d in completed)
    others = [d for d in all_docs if d["status"]["status"] != "Completed"]
    assert all(d["duration"] == 0 and d["price"] == 0 and "answeredBy" not in d for d in others)


def test_status_progresses_through_intermediate_statuses_to_final() -> None:
    clock = Clock()
    store = Store(1, 200, START, END, settle_seconds=100, clock=clock)
    entry = max(store.entries, key=lambda e: store.record(e).settle_fraction)
    final_after = 100 * store.record(entry).settle_fraction
    seen = []
    for step in range(0, 44):
        clock.now = store.clock_start + final_after * step / 40
        seen.append(store.status(entry, clock.now))
    assert [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]] == [
        *STATUS_PROGRESSION,
        store.record(entry).final_status,
    ]
    assert store.doc(entry, clock.now) is store.record(entry).doc


def test_without_settle_seconds_everything_is_final() -> None:
    store = Store(1, 300, START, END)
    assert all(store.status(e, 0) in FINAL_STATUSES | {"Unknown"} for e in store.entries)


def test_with_a_settle_lag_each_message_is_final_that_long_after_its_own_creation() -> None:
    # 240 messages created over the 4 minutes before "now", finishing 60-120 s after creation.
    now_ms = 1_800_000_000_000
    clock = Clock(now_ms / 1000)
    store = Store(1, 240, now_ms - 240_000, now_ms, settle_lag=(60, 120), clock=clock)
    for entry in store.entries:
        lag = 60 + 60 * store.record(entry).settle_fraction
        final_at = entry.created_ms / 1000 + lag
        assert store.status(entry, final_at - 0.01) in STATUS_PROGRESSION
        assert store.status(entry, final_at + 1e-6) == store.record(entry).final_status
    pending = [e for e in store.entries if store.stage(e, clock.now) is not None]
    # Everything older than 120 s is final, everything younger than 60 s is not.
    assert all(e.created_ms > now_ms - 120_000 for e in pending)
    assert {e for e in store.entries if e.created_ms > now_ms - 60_000} <= set(pending)
    assert not store.is_settled(clock.now) and store.is_settled(clock.now + 120)


def test_with_a_settle_lag_arrivals_finish_after_their_creation() -> None:
    clock = Clock()
    store = Store(1, 10, START, END, arrival_rate=1, settle_lag=(5, 5), clock=clock)
    clock.now += 3.5
    store.catch_up(clock.now)
    arrived = store.entries[-3:]
    assert [store.stage(e, clock.now) is None for e in arrived] == [False, False, False]
    assert all(store.stage(e, e.created_ms / 1000 + 5) is None for e in arrived)
    assert all(store.stage(e, clock.now) is None for e in store.entries[:10])


@pytest.mark.parametrize("text", ["120:60", "-1:5", "0:0", "abc", "1:2:3"])
def test_a_bad_settle_lag_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"settle.lag"):
        parse_settle_lag(text)


def test_settle_lag_and_settle_seconds_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="not both"):
        Store(1, 10, START, END, settle_seconds=5, settle_lag=(1, 2))


def test_arrivals_are_created_at_the_rate_and_reset_drops_them() -> None:
    clock = Clock()
    store = Store(1, 10, START, END, arrival_rate=4, clock=clock)
    clock.now += 2.6
    assert store.catch_up(clock.now) == 10
    assert len(store.entries) == 20
    assert store.times[-1] == int((store.clock_start + 2.5) * 1000)
    store.reset()
    assert len(store.entries) == 10 and store.catch_up(clock.now) == 0


def test_copies_land_in_order_with_new_ids() -> None:
    store = Store(1, 50, START, END)
    source = store.entries[10]
    added = store.add_copies([source], 3, source.created_ms)
    ids = [store.record(e).doc["messageId"] for e in added]
    assert len(set(ids)) == 3 and store.record(source).doc["messageId"] not in ids
    keys = [(e.created_ms, store.record(e).doc["messageId"]) for e in store.entries]
    assert keys == sorted(keys)
    assert store.find(ids[0]) is added[0]


def test_index_range_is_half_open() -> None:
    store = Store(1, 100, START, END)
    lo, hi = store.index_range(store.times[10], store.times[20])
    assert (lo, hi) == (10, 20)
    assert store.index_range(None, None) == (0, 100)


def test_rate_faults_hit_an_evenly_spaced_fraction() -> None:
    schedule = FaultSchedule()
    assert [schedule.fires("x", 0.25) for _ in range(8)] == [False, False, False, True] * 2
    assert not any(schedule.fires("y", 0.0) for _ in range(10))


def test_bursts_repeat_every_k_calls_and_rotate_statuses() -> None:
    schedule = FaultSchedule(FaultSettings(error_burst=2, error_every=4))
    assert [schedule.burst_status() for _ in range(8)] == [500, 502, None, None, 503, 504, None, None]
    single = FaultSchedule(FaultSettings(error_burst=1, error_status=502))
    assert [single.burst_status() for _ in range(3)] == [502, None, None]


@pytest.mark.parametrize(
    "updates",
    [
        {"nope": 1},
        {"drop_rate": 1.5},
        {"error_status": 418},
        {"error_burst": 5, "error_every": 5},
        {"latency_ms": "x"},
    ],
)
def test_fault_settings_reject_bad_updates(updates: dict) -> None:
    with pytest.raises(ValueError):
        FaultSettings().merged(updates)


def test_retry_after_header_modes() -> None:
    assert retry_after_header("seconds", 7) == "7"
    assert retry_after_header("date", 7, now=0) == "Thu, 01 Jan 1970 00:00:07 GMT"
    assert retry_after_header("none", 7) is None


def test_route_templates() -> None:
    assert route_template("POST", "/voice/tracking") == "POST /voice/tracking"
    assert route_template("GET", "/voice/tracking/abc") == "GET /voice/tracking/{message_id}"
    assert route_template("GET", "/voice/tracking/campaign/c") == "GET /voice/tracking/campaign/{campaign_id}"
    assert (
        route_template("GET", "/voice/tracking/conversation/c")
        == "GET /voice/tracking/conversation/{conversation_tracking_id}"
    )
