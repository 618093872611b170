"""A real S3 endpoint for tests: moto's server (HTTP, in a thread) and a bucket on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

#: The Airflow connection (``AIRFLOW_CONN_...``) to the test server and the bucket tests write to.
S3_CONN_ID = "voicetrack_test_s3"
S3_BUCKET = "voicetrack-test"


def s3_client(endpoint: str) -> Any:
    """:return: a boto3 S3 client of the test server at ``endpoint``."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@contextmanager
def moto_s3_server(bucket: str = S3_BUCKET) -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 (a free port) with one empty ``bucket``; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def s3_connection_json(endpoint: str) -> str:
    """:return: an ``aws`` Airflow connection (JSON) to the test server."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@dataclass
class S3Bucket:
    """The test bucket, a boto3 client of it, and the Airflow connection id that reaches it."""

    client: Any
    name: str = S3_BUCKET
    conn_id: str = S3_CONN_ID

    def object_keys(self) -> list[str]:
        """:return: every key in the bucket, sorted."""
        listing = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(item["Key"] for item in listing)

    def read(self, key: str) -> bytes:
        """:return: the object's bytes."""
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def empty(self) -> None:
        """Delete every object."""
        for key in self.object_keys():
            self.client.delete_object(Bucket=self.name, Key=key)
