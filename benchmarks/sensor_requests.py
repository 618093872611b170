"""Count the emulator's requests per poke of ``VoiceMessageStatusSensor`` in search mode.

The sensor searches the whole ``--date-start``..``--date-end`` range; before each poke the emulator's
counters are reset (``POST /_emulator/stats/reset``), after it they are read (``GET /_emulator/stats``).
Reported in ``extra``: the API requests (``/voice/...`` routes) of each poke, the token requests of
all pokes, and what each poke returned (``is_done``).
"""

from __future__ import annotations

import argparse
from typing import Any

import requests

from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from benchmarks.common import initialize_airflow, run_variant, set_voicetrack_connection, variant_parser

CONN_ID = "voicetrack_bench"


def count_requests_per_poke(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """
    Poke the sensor ``--pokes`` times; return the pokes made and the requests of each.

    :param args: The parsed arguments.
    """
    set_voicetrack_connection(CONN_ID, args)
    sensor = VoiceMessageStatusSensor(
        task_id="wait",
        voicetrack_conn_id=CONN_ID,
        date_start=args.date_start,
        date_end=args.date_end,
        poke_interval=1,
    )
    api_requests: list[int] = []
    returns: list[bool] = []
    tokens = 0
    with requests.Session() as admin:
        for _ in range(args.pokes):
            admin.post(f"{args.url}/_emulator/stats/reset", timeout=30).raise_for_status()
            returned = sensor.poke(context={})  # type: ignore[arg-type]
            stats = admin.get(f"{args.url}/_emulator/stats", timeout=30).json()
            api_requests.append(
                sum(count for route, count in stats["requests"].items() if " /voice/" in route)
            )
            tokens += sum(count for route, count in stats["requests"].items() if "/oauth/token" in route)
            returns.append(bool(returned.is_done))
    return len(api_requests), {"api_requests": api_requests, "token_requests": tokens, "returns": returns}


def _parser() -> argparse.ArgumentParser:
    parser = variant_parser(__doc__ or "")
    parser.add_argument("--pokes", type=int, default=3)
    return parser


if __name__ == "__main__":
    run_variant(__doc__ or "", count_requests_per_poke, _parser(), setup=initialize_airflow)
