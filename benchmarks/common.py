"""What every variant process shares: its command line, the measurement, and the result line.

A variant is a function ``work(args) -> records`` run by :func:`run_variant`, which measures only the
call and prints one line
``BENCH_RESULT {json}`` on stdout for :mod:`benchmarks.run` to read. Variant modules import what they
use (Airflow, our package) at module level, so the interpreter start and the imports are not measured.

``records``
    Messages the variant received (its own count, checked by the runner against the emulator).
``wall_s``, ``cpu_s``
    Wall-clock time and CPU time (user + system, all threads of this process) of the call.
``setup_s``
    Seconds of the variant's untimed set-up: what an Airflow task process loads once, whatever the
    task (:func:`initialize_airflow`).
``peak_rss_mb``
    This process's own peak resident set size (``VmHWM``, read in the process at its end), imports
    included; ``base_rss_mb`` is the resident set size just before the call.
``extra``
    The variant's own figures; ``page_size`` is the page size it requested (``--page-size`` unless the
    variant reports another), so that the runner compares only variants that read the same pages.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
import requests

from airflow_voicetrack.constants import DATE_END_PARAM, DATE_START_PARAM, MAX_PAGE_SIZE, SEARCH_PATH

RESULT_PREFIX = "BENCH_RESULT "


@dataclass
class VariantResult:
    """One variant's measurement, as printed on the result line (see the module docstring)."""

    records: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    base_rss_mb: float
    setup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def variant_parser(description: str) -> argparse.ArgumentParser:
    """
    Return the command line every variant accepts.

    :param description: What the variant measures (the ``--help`` text).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="emulator base URL, http://127.0.0.1:PORT")
    parser.add_argument("--client-id", default="demo-app-id")
    parser.add_argument("--client-secret", default="demo-app-secret")
    parser.add_argument("--date-start", required=True, help="ISO-8601 UTC, e.g. 2026-11-01T00:00:00Z")
    parser.add_argument("--date-end", required=True, help="ISO-8601 UTC, exclusive")
    parser.add_argument("--page-size", type=int, default=MAX_PAGE_SIZE)
    parser.add_argument("--concurrency", type=int, default=None, help="parallel requests (variant default)")
    parser.add_argument("--out-dir", default="benchmarks/out", help="where variants that write put files")
    return parser


def set_voicetrack_connection(conn_id: str, args: argparse.Namespace) -> None:
    """
    Define ``conn_id`` as a voicetrack connection to the emulator at ``args.url`` (env var form).

    :param conn_id: The Airflow connection id.
    :param args: The parsed variant arguments (``url``, ``client_id``, ``client_secret``).
    """
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "voicetrack",
            "login": args.client_id,
            "password": args.client_secret,
            "host": args.url,
            "extra": {"auth_url": f"{args.url}/oauth/token"},
        }
    )


def fetch_token(session: requests.Session, args: argparse.Namespace) -> str:
    """
    Get an access token from the emulator's token endpoint (OAuth2 client credentials).

    :param session: The session to send the request with.
    :param args: The parsed variant arguments (``url``, ``client_id``, ``client_secret``).
    """
    basic = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
    response = session.post(
        f"{args.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def search_url(args: argparse.Namespace, page: int) -> str:
    """
    Return the URL of one page of the benchmark's search (the whole ``--date-start``..``--date-end``).

    :param args: The parsed variant arguments.
    :param page: The 0-based page number.
    """
    return (
        f"{args.url}{SEARCH_PATH}?{DATE_START_PARAM}={args.date_start}&{DATE_END_PARAM}={args.date_end}"
        f"&page={page}&size={args.page_size}"
    )


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """
    This process's peak resident set size since it started, in MB.

    Linux keeps ``ru_maxrss`` across ``exec``, so a variant started by a runner that held much memory
    would report the runner's peak; ``VmHWM`` belongs to the process's own memory map.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(work: Callable[[], int | tuple[int, dict[str, Any]]]) -> VariantResult:
    """
    Run ``work`` once and measure it (see the module docstring).

    :param work: Returns the number of records, or that number and extra figures to report.
    """
    base_rss = _rss_mb()
    cpu0, t0 = _cpu_s(), time.perf_counter()
    outcome = work()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    records, extra = outcome if isinstance(outcome, tuple) else (outcome, {})
    peak = peak_rss_mb()
    return VariantResult(records, wall, cpu, peak, base_rss, extra=extra)


def initialize_airflow() -> None:
    """
    Load once what every Airflow task process loads, whatever the task: the plugins (for the hook
    lineage collector) and the object-storage file systems that the providers register.
    """
    from airflow.sdk.io.store import attach
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector()
    attach("file")


def run_variant(
    description: str,
    work: Callable[[argparse.Namespace], int | tuple[int, dict[str, Any]]],
    parser: argparse.ArgumentParser | None = None,
    setup: Callable[[], None] | None = None,
) -> None:
    """
    Parse the command line, run ``setup``, measure ``work`` and print the result line.

    :param description: What the variant measures.
    :param work: Runs the variant and returns the number of records it received (optionally with
        extra figures).
    :param parser: A parser with variant-specific arguments (from :func:`variant_parser`).
    :param setup: Untimed one-time initialization (its duration is reported as ``setup_s``).
    """
    args = (parser or variant_parser(description)).parse_args()
    started = time.perf_counter()
    if setup is not None:
        setup()
    setup_s = time.perf_counter() - started
    result = measure(lambda: work(args))
    result.setup_s = setup_s
    result.extra.setdefault("page_size", args.page_size)
    sys.stdout.write(RESULT_PREFIX + json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()
