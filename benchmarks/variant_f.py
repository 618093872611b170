"""Variant F: dlt's ``rest_api`` source writing JSON Lines to dlt's local filesystem destination.

Configured the way dlt's REST API source docs show: a declarative client with OAuth2 client
credentials and a page-number paginator, one resource for ``POST /voice/tracking`` with
``data_selector: content``, and ``pipeline.run(..., loader_file_format="jsonl")`` into a
``filesystem`` destination on the local disk. Runs in its own virtualenv (``dlt`` only, no Airflow).

What a dlt user has to work around on this API (each is a line below, marked WORKAROUND):

- dlt's stock ``OAuth2ClientCredentials`` sends ``client_id``/``client_secret`` in the form body;
  Routee's token endpoint wants HTTP Basic client authentication and answers 401 otherwise.
- The search body is a JSON array of filters (``[]`` for none). ``rest_api`` validates ``json`` as
  an object and rejects the array, so the body is left out (the API reads no body as no filter).
  A filtered search cannot be declared at all: it needs a resource of one's own (variant G).

Extraction is ``pipeline.run``: dlt extracts, normalizes (snake_case keys, nulls dropped,
``_dlt_*`` columns) and loads; the figures of each step are reported as extras.
"""

from __future__ import annotations

import argparse
import base64
import shutil
from pathlib import Path
from typing import Any

from dlt.common.configuration import configspec
from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
from dlt.sources.rest_api import rest_api_source

from airflow_voicetrack.constants import DATE_END_PARAM, DATE_START_PARAM
from benchmarks.common import run_variant, variant_parser
from benchmarks.dlt_common import dlt_rows_and_timings, make_pipeline


@configspec
class BasicClientCredentials(OAuth2ClientCredentials):
    """WORKAROUND: client credentials sent as HTTP Basic, as the token endpoint wants."""

    def build_access_token_request(self) -> dict[str, Any]:
        """Return the token request with Basic client authentication and only the grant type."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return {
            "headers": {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            },
            "data": {"grant_type": "client_credentials", **self.access_token_request_data},
        }


def source(args: argparse.Namespace) -> Any:
    """Return the declarative ``rest_api`` source for the benchmark's search."""
    return rest_api_source(
        {
            "client": {
                "base_url": args.url,
                "auth": BasicClientCredentials(
                    access_token_url=f"{args.url}/oauth/token",
                    client_id=args.client_id,
                    client_secret=args.client_secret,
                ),
                "paginator": PageNumberPaginator(base_page=0, page_param="page", total_path="totalPages"),
            },
            "resources": [
                {
                    "name": "voice_messages",
                    "endpoint": {
                        "path": "voice/tracking",
                        "method": "POST",
                        "params": {
                            DATE_START_PARAM: args.date_start,
                            DATE_END_PARAM: args.date_end,
                            "size": args.page_size,
                        },
                        # WORKAROUND: no "json": [] (rejected); see the module docstring.
                        "data_selector": "content",
                    },
                }
            ],
        }
    )


def extract(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Run the pipeline into ``{out_dir}/f``; return the rows written and dlt's step timings."""
    out = Path(args.out_dir).resolve() / "f"
    shutil.rmtree(out, ignore_errors=True)
    pipeline = make_pipeline("voicetrack_f", out)
    info = pipeline.run(source(args), loader_file_format="jsonl")
    return dlt_rows_and_timings(pipeline, info)


if __name__ == "__main__":
    run_variant(__doc__ or "", extract, variant_parser(__doc__ or ""))
