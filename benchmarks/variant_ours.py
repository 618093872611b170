"""Variants D and E: our extraction, ``VoiceTrackHook.search_messages`` streamed by ``write_messages``.

These are the calls ``VoiceTrackingOperator.execute`` makes for an object-storage output: the
hook pages through the search and the writer streams the messages into a local ``jsonl`` file through
``ObjectStoragePath`` (temporary file, then an atomic rename). Both use ``--page-size``, as A, B and C
do, so that the ratios compare the same pages; D passes ``--concurrency 1``; E leaves concurrency and
windows at their defaults. The runner checks the written ids against the emulator's truth.

The connection comes from ``AIRFLOW_CONN_VOICETRACK_BENCH`` (set here from ``--url``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import gc_frozen
from airflow_voicetrack.writers import write_messages
from benchmarks.common import initialize_airflow, run_variant, set_voicetrack_connection, variant_parser

CONN_ID = "voicetrack_bench"


def extract(args: argparse.Namespace) -> tuple[int, dict[str, int | str | None]]:
    """
    Extract the search into ``{out_dir}/{name}.jsonl``; return the records written, and the file and
    the page size the hook used for the runner's checks.

    :param args: The parsed variant arguments (``concurrency`` None keeps the default).
    """
    set_voicetrack_connection(CONN_ID, args)
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = ObjectStoragePath(f"file://{out_dir / args.name}.jsonl")
    hook = VoiceTrackHook(CONN_ID, page_size=args.page_size, max_concurrency=args.concurrency)
    with gc_frozen():  # as VoiceTrackingOperator.execute does
        result = write_messages(hook.search_messages(args.date_start, args.date_end), path, "jsonl")
    stats = hook.last_search_stats or {}
    return result.records, {
        "pages": stats.get("pages"),
        "bytes": result.bytes,
        "page_size": hook.settings.page_size,
        "output": str(out_dir / f"{args.name}.jsonl"),
    }


def _parser() -> argparse.ArgumentParser:
    parser = variant_parser(__doc__ or "")
    parser.add_argument("--name", default="ours", help="output file name (without .jsonl)")
    return parser


if __name__ == "__main__":
    run_variant(__doc__ or "", extract, _parser(), setup=initialize_airflow)
