"""Variant B: a raw concurrent fetch of all pages, bodies read and discarded.

The practical limit of the emulator plus loopback: the first page is decoded for ``totalPages``,
the others are fetched by a pool of threads (one ``requests`` session each, as many as our
extraction's default concurrency) and only their bytes are counted. Records are counted from
``numberOfElements``, found without decoding the body.
"""

from __future__ import annotations

import argparse
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from benchmarks.common import fetch_token, run_variant, search_url, variant_parser

#: Our hook's default ``max_concurrency`` (the connection extra's default).
DEFAULT_CONCURRENCY = 4
_NUMBER_OF_ELEMENTS = re.compile(rb'"numberOfElements"\s*:\s*(\d+)')


def fetch_concurrently(args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """
    Fetch page 0, then every other page concurrently; return the records and bytes seen.

    :param args: The parsed variant arguments (``concurrency`` threads).
    """
    concurrency = args.concurrency or DEFAULT_CONCURRENCY
    local = threading.local()
    sessions: list[requests.Session] = []
    with requests.Session() as first:
        token = fetch_token(first, args)
        headers = {"Authorization": f"Bearer {token}"}
        response = first.post(search_url(args, 0), json=[], headers=headers, timeout=120)
        response.raise_for_status()
        body = response.json()
    total_pages = int(body["totalPages"])

    def fetch(page: int) -> tuple[int, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        reply = session.post(search_url(args, page), json=[], headers=headers, timeout=120)
        reply.raise_for_status()
        content = reply.content
        # The envelope's counters come after "content" in the emulator's JSON: search from the end.
        match = _NUMBER_OF_ELEMENTS.search(content, max(0, len(content) - 512))
        if match is None:
            match = _NUMBER_OF_ELEMENTS.search(content)
        if match is None:
            raise ValueError(f"page {page} has no numberOfElements")
        return int(match.group(1)), len(content)

    records, size = len(body["content"]), len(response.content)
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for page_records, page_bytes in pool.map(fetch, range(1, total_pages)):
                records += page_records
                size += page_bytes
    finally:
        for session in sessions:
            session.close()
    return records, {"pages": total_pages, "bytes": size, "concurrency": concurrency}


if __name__ == "__main__":
    run_variant(__doc__ or "", fetch_concurrently, variant_parser(__doc__ or ""))
