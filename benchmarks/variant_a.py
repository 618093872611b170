"""Variant A: a raw sequential ``requests`` loop that decodes every page's JSON and discards it.

The sequential floor: what a hand-written loop over the pages achieves, with one connection and
the standard library's JSON decoder (``Response.json()``).
"""

from __future__ import annotations

import argparse

import requests

from benchmarks.common import fetch_token, run_variant, search_url


def fetch_sequentially(args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """
    Fetch every page of the search one after the other; return the records and pages seen.

    :param args: The parsed variant arguments.
    """
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fetch_token(session, args)}"
        records = pages = 0
        page = 0
        while True:
            response = session.post(search_url(args, page), json=[], timeout=120)
            response.raise_for_status()
            body = response.json()
            records += len(body["content"])
            pages += 1
            if body["last"] or not body["content"]:
                return records, {"pages": pages}
            page += 1


if __name__ == "__main__":
    run_variant(__doc__ or "", fetch_sequentially)
