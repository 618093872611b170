"""Variant C: Airflow's ``HttpOperator`` with a ``pagination_function``, what users write today.

The operator follows ``last``/``number`` of each page envelope and keeps every response until the
end; a ``response_filter`` then decodes all pages into the list of messages that the task would
return to XCom. The operator's ``execute`` runs with a minimal context (no XCom push: serializing and
storing that list would only add to C's time and memory, so C's figures are a lower bound).

The ``http`` connection comes from ``AIRFLOW_CONN_VOICETRACK_BENCH_HTTP`` (set here from ``--url``),
and the bearer token, fetched first, goes in ``headers``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.providers.http.operators.http import HttpOperator

from benchmarks.common import fetch_token, initialize_airflow, run_variant, search_url

CONN_ID = "voicetrack_bench_http"


def extract_with_http_operator(args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """
    Run ``HttpOperator.execute`` over every page; return the messages it produced.

    :param args: The parsed variant arguments.
    """
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = args.url

    def endpoint(page: int) -> str:
        # HttpHook joins the connection's base URL and the endpoint.
        split = urlsplit(search_url(args, page))
        return f"{split.path.lstrip('/')}?{split.query}"

    def next_page(response: requests.Response) -> dict[str, Any] | None:
        envelope = response.json()
        if envelope["last"] or not envelope["content"]:
            return None
        return {"endpoint": endpoint(envelope["number"] + 1)}

    def all_messages(responses: list[requests.Response]) -> list[dict[str, Any]]:
        return [message for response in responses for message in response.json()["content"]]

    with requests.Session() as session:
        token = fetch_token(session, args)
    operator = HttpOperator(
        task_id="http_extract",
        http_conn_id=CONN_ID,
        method="POST",
        endpoint=endpoint(0),
        data=json.dumps([]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        pagination_function=next_page,
        response_filter=all_messages,
        extra_options={"timeout": 120},
    )
    messages = operator.execute(context={})  # type: ignore[arg-type]
    return len(messages), {}


if __name__ == "__main__":
    run_variant(__doc__ or "", extract_with_http_operator, setup=initialize_airflow)
