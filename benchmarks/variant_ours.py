"""Variants D, E and F: our extraction, ``VoiceTrackHook.search_messages`` streamed by ``write_messages``.

These are the calls ``VoiceTrackingOperator.execute`` makes for an object-storage output: the
hook pages through the search and the writer streams the messages into a local file through
``ObjectStoragePath`` (temporary file, then an atomic rename); for ``jsonl`` the hook hands over each
message's raw bytes, as for the operator. All use ``--page-size``, as A, B and C do, so that the
ratios compare the same pages; D passes ``--concurrency 1``; E leaves concurrency and windows at
their defaults; F is E writing ``csv`` (every message decoded). The runner checks the ids of a
written ``jsonl`` file against the emulator's truth.

The connection comes from ``AIRFLOW_CONN_VOICETRACK_BENCH`` (set here from ``--url``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.writers import RAW_FORMATS, gc_frozen, write_messages
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
    path = ObjectStoragePath(f"file://{out_dir / args.name}.{args.format}")
    hook = VoiceTrackHook(CONN_ID, page_size=args.page_size, max_concurrency=args.concurrency)
    messages = hook.search_messages(args.date_start, args.date_end, raw=args.format in RAW_FORMATS)
    with gc_frozen():  # as VoiceTrackingOperator.execute does
        result = write_messages(messages, path, args.format)
    stats = hook.last_search_stats or {}
    return result.records, {
        "pages": stats.get("pages"),
        "bytes": result.bytes,
        "page_size": hook.settings.page_size,
        # the runner reads JSON Lines back to check the ids; a CSV file is not checked
        **({"output": str(out_dir / f"{args.name}.jsonl")} if args.format == "jsonl" else {}),
    }


def _parser() -> argparse.ArgumentParser:
    parser = variant_parser(__doc__ or "")
    parser.add_argument("--name", default="ours", help="output file name (without extension)")
    parser.add_argument("--format", default="jsonl", help="output format (jsonl, csv, ...)")
    return parser


if __name__ == "__main__":
    run_variant(__doc__ or "", extract, _parser(), setup=initialize_airflow)
