"""
The opt-in request log: every API and token exchange, as the client sent and received it.

Started with ``--request-log N`` (``EmulatorProcess(request_log=N)``), it keeps the last N exchanges
and serves them at ``GET /_emulator/requests``; ``POST /_emulator/stats/reset`` and
``POST /_emulator/reset`` clear it. It exists so that tests can hold every request a client sends,
and every response it gets, to the API's contract (``airflow_voicetrack/contract``). Off by default:
a server without it runs no extra code per request.

Secrets never enter it: the ``Authorization`` header is dropped (only its scheme is kept, as
``auth_scheme``), so are ``Proxy-Authorization`` and cookies, an ``access_token`` in a JSON response
and a ``client_secret`` in a form body are replaced by ``<redacted>``. Admin requests
(``/_emulator/...``) are not logged. The middleware sits outside the fault middleware, so an
injected fault is logged as the client met it (a dropped connection has ``status`` ``None``).
"""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REDACTED = "<redacted>"
#: Request headers left out of the log (``Authorization`` is reduced to its scheme).
_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: Form fields and JSON keys whose values are secrets.
_SECRET_FORM_FIELDS = frozenset({"client_secret", "client_assertion", "password"})
_SECRET_JSON_KEYS = frozenset({"access_token", "refresh_token", "id_token"})
#: Bodies longer than this are logged as their length only (``*_truncated``), so a log of N
#: exchanges holds at most about 2 * N MiB.
MAX_LOGGED_BODY = 1 << 20


def _text(body: bytes) -> tuple[str | None, bool]:
    if len(body) > MAX_LOGGED_BODY:
        return None, True
    return body.decode("utf-8", "replace"), False


def _redact_form(body: str) -> str:
    pairs = parse_qsl(body, keep_blank_values=True)
    if not any(name in _SECRET_FORM_FIELDS for name, _ in pairs):
        return body
    return urlencode([(n, REDACTED if n in _SECRET_FORM_FIELDS else v) for n, v in pairs])


def _redact_json(body: str) -> str:
    if not any(key in body for key in _SECRET_JSON_KEYS):
        return body
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return REDACTED  # cut short or malformed: cannot tell where the secret is
    if isinstance(data, dict):
        data = {k: REDACTED if k in _SECRET_JSON_KEYS else v for k, v in data.items()}
    return msgspec.json.encode(data).decode()


class RequestLog:
    """The last ``keep`` exchanges, oldest first.

    :param keep: how many exchanges to keep (at least 1).
    """

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError("request_log must be >= 1 (or 0 for no log)")
        self.entries: deque[dict[str, Any]] = deque(maxlen=keep)

    def clear(self) -> None:
        """Forget every exchange."""
        self.entries.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """The exchanges, oldest first."""
        return list(self.entries)


class RequestLogMiddleware:
    """Raw ASGI middleware recording each non-admin exchange into a :class:`RequestLog`.

    :param app: the application (the fault middleware and the routes).
    :param log: where to record.
    """

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; record it and its response."""
        if scope["type"] != "http" or scope.get("path", "").startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        # The whole body is read first and replayed: a fault answered before the handler reads the
        # body (a 429, an injected 401) must still log what the client sent.
        chunks: list[bytes] = []
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # disconnected before the body was complete
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request_body = b"".join(chunks)
        replayed = False
        response_body: list[bytes] = []
        response: dict[str, Any] = {"status": None, "headers": {}}

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first or {"type": "http.request", "body": request_body, "more_body": False}
            return await receive()

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = {
                    name: v.decode("latin-1")
                    for k, v in message.get("headers", [])
                    if (name := k.decode("latin-1").lower()) != "set-cookie"
                }
            elif message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay, logged_send)
        finally:
            entry = self._entry(scope, request_body, response, b"".join(response_body))
            self.log.entries.append(entry)

    @staticmethod
    def _entry(scope: Scope, request_body: bytes, response: dict[str, Any], response_body: bytes) -> dict:
        headers: dict[str, str] = {}
        auth_scheme = None
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name == "authorization":
                auth_scheme = value.split(" ", 1)[0] or None
            elif name not in _DROPPED_HEADERS:
                headers[name] = value
        body, body_truncated = _text(request_body)
        form = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        if body is not None and form:
            body = _redact_form(body)
        elif body is not None:
            body = _redact_json(body)
        out, out_truncated = _text(response_body)
        if out is not None:
            out = _redact_json(out)
        return {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            "query_string": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "auth_scheme": auth_scheme,
            "body": body,
            "body_truncated": body_truncated,
            "status": response["status"],
            "response_headers": response["headers"],
            "response_body": out,
            "response_body_truncated": out_truncated,
        }
