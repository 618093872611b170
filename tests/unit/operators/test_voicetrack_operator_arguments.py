"""VoiceTrackingOperator arguments, asset declaration and interval splitting (no sockets)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import Asset, ObjectStoragePath

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.operators.voicetrack import (
    DEFAULT_DATE_END,
    DEFAULT_DATE_START,
    VoiceTrackingOperator,
    split_interval,
)
from airflow_voicetrack.output import default_file_name, output_asset, resolve_format


def operator(**kwargs: Any) -> VoiceTrackingOperator:
    return VoiceTrackingOperator(task_id="extract", **kwargs)


def test_interval_search_and_output_arguments_are_templated() -> None:
    assert {"date_start", "date_end", "filters", "campaign_tracking_id", "sort", "output_path"} <= set(
        VoiceTrackingOperator.template_fields
    )


def test_defaults_extract_the_data_interval_to_xcom() -> None:
    task = operator()
    assert (task.date_start, task.date_end) == (DEFAULT_DATE_START, DEFAULT_DATE_END)
    assert "data_interval_start" in DEFAULT_DATE_START
    assert "data_interval_end" in DEFAULT_DATE_END
    assert task.output_path is None
    assert task.outlets == []
    assert task.xcom_max_records == 10_000  # as README documents


@pytest.mark.parametrize(
    ("output_format", "compression", "expected"),
    [
        ("jsonl", None, "jsonl"),
        ("jsonl", "gzip", "jsonl.gz"),
        ("jsonl.gz", None, "jsonl.gz"),
        ("jsonl.gz", "gzip", "jsonl.gz"),
        ("csv", "gzip", "csv.gz"),
        ("parquet", None, "parquet"),
    ],
)
def test_format_and_compression_resolve_to_a_format_name(
    output_format: str, compression: str | None, expected: str
) -> None:
    assert resolve_format(output_format, compression) == expected


def test_unknown_output_format_is_rejected_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"output_format='xml'.*jsonl, jsonl\.gz, csv, csv\.gz, parquet"):
        operator(output_format="xml")


def test_gzip_parquet_is_rejected_explaining_why() -> None:
    with pytest.raises(ValueError, match="Parquet compresses internally"):
        operator(output_format="parquet", compression="gzip")


def test_unknown_compression_is_rejected() -> None:
    with pytest.raises(ValueError, match="compression must be None or 'gzip'"):
        operator(compression="zstd")  # type: ignore[arg-type]


def test_unknown_empty_interval_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty_interval must be one of 'fail', 'skip', 'lookback'"):
        operator(empty_interval="ignore")  # type: ignore[arg-type]


def test_lookback_policy_needs_a_positive_lookback() -> None:
    with pytest.raises(ValueError, match="needs lookback, a positive timedelta"):
        operator(empty_interval="lookback")
    with pytest.raises(ValueError, match="needs lookback, a positive timedelta"):
        operator(empty_interval="lookback", lookback=timedelta(0))


def test_lookback_without_the_lookback_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="lookback is used only with empty_interval='lookback'"):
        operator(lookback=timedelta(hours=1))


@pytest.mark.parametrize("cap", [-1, 1.5, True])
def test_xcom_cap_must_be_a_non_negative_integer(cap: Any) -> None:
    with pytest.raises(ValueError, match="xcom_max_records must be a non-negative integer"):
        operator(xcom_max_records=cap)


def test_page_size_is_checked_against_the_api_maximum() -> None:
    with pytest.raises(ValueError, match="page_size must be an integer from 1 to 2000"):
        operator(page_size=5000)


def test_max_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be a positive integer"):
        operator(max_concurrency=0)


def test_static_output_path_is_the_outlet_asset() -> None:
    task = operator(output_path="s3://bucket/voicetrack/all.jsonl", output_conn_id="aws_default")
    assert task.outlets == [Asset("s3://bucket/voicetrack/all.jsonl")]


def test_templated_output_path_declares_its_static_directory_as_the_asset() -> None:
    asset = output_asset("s3://bucket/voicetrack/{{ ds }}/messages.jsonl")
    assert asset == Asset("s3://bucket/voicetrack")


def test_directory_output_path_is_the_asset() -> None:
    assert output_asset("file:///data/voicetrack/") == Asset("file:///data/voicetrack")


def test_asset_uri_leaves_out_the_connection_id() -> None:
    assert output_asset("s3://aws_default@bucket/voicetrack/x.jsonl") == Asset(
        "s3://bucket/voicetrack/x.jsonl"
    )


def test_object_storage_path_output_declares_an_asset() -> None:
    assert output_asset(ObjectStoragePath("file:///data/{{ ds }}/x.jsonl")) == Asset("file:///data")


@pytest.mark.parametrize(
    "path", ["{{ var.value.target }}", "s3://{{ var.value.bucket }}/x.jsonl", "file:///{{ ds }}"]
)
def test_output_path_without_a_static_part_declares_no_asset(path: str) -> None:
    assert output_asset(path) is None
    assert operator(output_path=path).outlets == []


def test_default_file_name_is_built_from_the_interval_and_format() -> None:
    start, end = pendulum.datetime(2026, 11, 1, tz="UTC"), pendulum.datetime(2026, 11, 2, tz="UTC")
    assert default_file_name(start, end, "csv.gz") == "voicetrack_20261101T000000Z_20261102T000000Z.csv.gz"


def test_split_interval_covers_the_range_with_windows() -> None:
    assert split_interval("2026-11-01T00:00:00Z", "2026-11-02T06:00:00+00:00", timedelta(hours=12)) == [
        {"date_start": "2026-11-01T00:00:00Z", "date_end": "2026-11-01T12:00:00Z"},
        {"date_start": "2026-11-01T12:00:00Z", "date_end": "2026-11-02T00:00:00Z"},
        {"date_start": "2026-11-02T00:00:00Z", "date_end": "2026-11-02T06:00:00Z"},
    ]


def test_split_interval_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="must be after date_start"):
        split_interval("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", timedelta(days=1))


def test_split_interval_rejects_a_window_below_one_second() -> None:
    with pytest.raises(ValueError, match="every must be a timedelta of at least one second"):
        split_interval("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", timedelta(0))


@pytest.mark.parametrize(
    ("kwargs", "slots"),
    [({}, 4), ({"max_concurrency": 2}, 2), ({"max_concurrency": 2, "pool_slots": 3}, 3)],
    ids=["default_concurrency", "max_concurrency", "explicit_pool_slots"],
)
def test_pool_slots_default_to_the_requests_in_flight(kwargs: dict[str, Any], slots: int) -> None:
    assert operator(**kwargs).pool_slots == slots


def test_mapped_task_pool_slots_default_to_max_concurrency() -> None:
    from airflow.sdk import DAG

    with DAG("pool_slots_mapped", schedule=None) as dag:
        VoiceTrackingOperator.partial(task_id="two", max_concurrency=2).expand_kwargs(
            [{"campaign_tracking_id": "a"}]
        )
        VoiceTrackingOperator.partial(task_id="default").expand_kwargs([{"campaign_tracking_id": "a"}])
        VoiceTrackingOperator.partial(task_id="explicit", pool_slots=1).expand_kwargs(
            [{"campaign_tracking_id": "a"}]
        )

    assert [dag.get_task(t).pool_slots for t in ("two", "default", "explicit")] == [2, 4, 1]


@pytest.mark.parametrize(
    ("connection_limit", "kwargs", "expected"),
    [
        (8, {}, 4),  # pool_slots (default 4) caps the connection's 8
        (2, {}, 2),  # the connection's 2 caps pool_slots 4
        (8, {"pool_slots": 3}, 3),
        (8, {"max_concurrency": 5, "pool_slots": 6}, 5),  # never above the task's own max_concurrency
        (3, {"max_concurrency": 6}, 3),
    ],
)
def test_effective_concurrency_is_the_smaller_of_connection_and_pool_slots(
    monkeypatch: pytest.MonkeyPatch, connection_limit: int, kwargs: dict[str, Any], expected: int
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VOICETRACK_POOLED",
        json.dumps(
            {
                "conn_type": "voicetrack",
                "login": "app",
                "password": "secret-value",
                "host": "http://127.0.0.1:9",
                "extra": {"max_concurrency": connection_limit},
            }
        ),
    )
    task = operator(voicetrack_conn_id="voicetrack_pooled", **kwargs)

    assert task.hook.settings.max_concurrency == expected


def test_waiting_for_terminal_statuses_is_the_default() -> None:
    task = operator()
    assert task.wait_for_terminal is True
    assert (task.poke_interval, task.settle_timeout, task.on_unsettled) == (60.0, 3600.0, "fail")
    assert task.criteria.terminal_statuses == DEFAULT_TERMINAL_STATUSES
    assert task.criteria.count_only


def test_wait_durations_take_seconds_or_timedelta() -> None:
    task = operator(poke_interval=timedelta(seconds=30), settle_timeout=timedelta(minutes=5))
    assert (task.poke_interval, task.settle_timeout) == (30.0, 300.0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"poke_interval": 0}, "poke_interval must be a positive number"),
        ({"poke_interval": -5}, "poke_interval must be a positive number"),
        ({"poke_interval": timedelta(0)}, "poke_interval must be a positive number"),
        ({"settle_timeout": 30}, r"settle_timeout \(30 s\) is shorter than poke_interval \(60 s\)"),
        ({"settle_timeout": "1h"}, "settle_timeout must be a positive number"),
        ({"on_unsettled": "skip"}, "on_unsettled must be one of 'fail', 'write', got 'skip'"),
        ({"terminal_statuses": []}, "terminal_statuses must not be empty"),
        ({"terminal_statuses": ["Done"]}, r"terminal_statuses has unknown statuses \['Done'\]"),
    ],
)
def test_bad_wait_arguments_are_refused_when_the_dag_is_built(kwargs: dict[str, Any], error: str) -> None:
    # Raised by the constructor, so before any request (and at DAG parse time).
    with pytest.raises(ValueError, match=error):
        operator(**kwargs)


def test_campaign_id_is_a_deprecated_name_of_campaign_tracking_id() -> None:
    with pytest.warns(DeprecationWarning, match="campaign_tracking_id") as record:
        task = operator(campaign_id="c-1")
    assert task.campaign_tracking_id == "c-1"
    assert record[0].filename == __file__  # the warning points at the DAG file's line
    with pytest.raises(ValueError, match="campaign_tracking_id only"):
        operator(campaign_id="c-1", campaign_tracking_id="c-2")
