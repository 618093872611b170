"""Fixtures for the hook tests: the lead's session emulator as ``voicetrack_default`` with fast retries,
and a tiny redirecting server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.emulator import FAST_RETRIES

from airflow_voicetrack.emulator.process import EmulatorProcess


@pytest.fixture
def emu(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The emulator (reset) as ``voicetrack_default``, with short retry waits."""
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emulator.connection_json(**FAST_RETRIES))
    return emulator


class Redirector:
    """An HTTP server on 127.0.0.1 that redirects every request to ``target`` + ``/landed`` + path,
    answers ``/landed/oauth/token`` with a token and any other ``/landed...`` with a message, and
    records each request's ``Authorization`` header."""

    def __init__(self) -> None:
        self.target = ""
        self.seen: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                owner.seen.append((self.path, self.headers.get("Authorization")))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))  # a reset would hide the reply
                if self.path.startswith("/landed"):
                    body = b'{"messageId": "landed"}'
                    if self.path.startswith("/landed/oauth/token"):
                        body = b'{"access_token": "landed-token", "token_type": "Bearer", "expires_in": 3600}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(307)
                self.send_header("Location", owner.target + "/landed" + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    """A redirecting server whose redirects go to ``localhost`` (another host name, same server)."""
    redirector = Redirector()
    redirector.target = f"http://localhost:{redirector.port}"
    thread = threading.Thread(target=redirector.server.serve_forever, daemon=True)
    thread.start()
    yield redirector
    redirector.server.shutdown()
    redirector.server.server_close()
    thread.join(5)
