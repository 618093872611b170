"""Variant G: the leanest dlt pipeline a performance-minded user would write for this API.

A ``@dlt.resource`` of one's own that posts the search page by page with a ``requests`` session
(Basic client authentication for the token, the JSON-array body) and yields each page's
``content`` list whole, with nesting turned off (``max_table_nesting=0``: no child tables for
``groups`` and ``recordings``). Destination and file format as in F: JSON Lines on the local disk.
dlt still normalizes every row (snake_case keys, nulls dropped, ``_dlt_*`` columns).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import requests

from benchmarks.common import fetch_token, run_variant, search_url, variant_parser
from benchmarks.dlt_common import dlt_rows_and_timings, make_pipeline


def pages(args: argparse.Namespace) -> Iterator[list[dict[str, Any]]]:
    """Yield the ``content`` of every page of the search, one after the other."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fetch_token(session, args)}"
        page = 0
        while True:
            response = session.post(search_url(args, page), json=[], timeout=120)
            response.raise_for_status()
            body = response.json()
            if body["content"]:
                yield body["content"]
            if body["last"] or not body["content"]:
                return
            page += 1


def extract(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Run the pipeline into ``{out_dir}/g``; return the rows written and dlt's step timings."""
    out = Path(args.out_dir).resolve() / "g"
    shutil.rmtree(out, ignore_errors=True)
    resource = dlt.resource(pages(args), name="voice_messages", max_table_nesting=0)
    pipeline = make_pipeline("voicetrack_g", out)
    info = pipeline.run(resource, loader_file_format="jsonl")
    return dlt_rows_and_timings(pipeline, info)


if __name__ == "__main__":
    run_variant(__doc__ or "", extract, variant_parser(__doc__ or ""))
