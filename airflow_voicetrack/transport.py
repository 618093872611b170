"""
The synchronous transport: one request over a ``requests`` session, held to ``request_deadline``.

Free of Airflow, so that :mod:`airflow_voicetrack.probe` runs without it; the sync hook's driver sends
every request through :func:`send` too. ``requests`` drops the ``Authorization`` header when a
redirect leads to another host.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from airflow_voicetrack.protocol import Request, Response, Settings, TransportErrorKind, TransportFailure

#: How much of a response body is read at a time.
READ_CHUNK_BYTES = 1 << 20


def new_session(settings: Settings, pool_size: int = 1) -> requests.Session:
    """
    A ``requests`` session whose requests :func:`send` can hold to ``settings.request_deadline``.

    :param pool_size: connections kept per host (the number of requests sent at once).
    """
    session = requests.Session()
    adapter = _DeadlineAdapter(pool_connections=2, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = settings.verify_ssl
    return session


def send(
    session: requests.Session, request: Request, token: str | None, settings: Settings
) -> Response | TransportFailure:
    """
    Send ``request`` (with ``token``) on ``session`` (from :func:`new_session`), within the deadline.

    :return: the response, or what went wrong when none came back (see :func:`error_kind`).
    :raises requests.RequestException: an error that is not about the transport (a bad URL, say).
    """
    deadline = _Deadline(settings.request_deadline)
    try:
        with deadline:
            reply = session.request(
                **request.arguments(token),
                timeout=(settings.connect_timeout, settings.read_timeout),
                # Per request, not only on the session: requests lets REQUESTS_CA_BUNDLE or
                # CURL_CA_BUNDLE override a session's verify=False (psf/requests#3829).
                verify=settings.verify_ssl,
                stream=True,
            )
            try:
                # ``Response.content`` reads in 10 KiB chunks: a 1.2 MB page costs 120 trips
                # through urllib3; 1 MiB chunks cost two, and the errors are mapped the same way.
                body = b"".join(reply.iter_content(READ_CHUNK_BYTES))
            finally:
                reply.close()
    except requests.RequestException as exc:
        if deadline.expired:
            return TransportFailure("deadline", deadline_text(deadline.seconds))
        kind = error_kind(exc)
        if kind is None:
            raise
        return TransportFailure(kind, str(exc))
    return Response(reply.status_code, reply.headers, body)


def error_kind(exc: requests.RequestException) -> TransportErrorKind | None:
    """:return: the kind of transport failure ``exc`` is, or ``None`` when it is not one."""
    if isinstance(exc, requests.exceptions.SSLError) or is_tls_error(exc):
        return "tls"
    if isinstance(exc, requests.exceptions.ConnectTimeout) or any(
        isinstance(e, NewConnectionError) for e in _error_chain(exc)
    ):
        return "connect"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(
        exc,
        (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
    ):
        return "protocol"
    return None


def _error_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc``, its causes, and the reasons/arguments libraries wrap their errors in."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(e for e in (item.__cause__, item.__context__, getattr(item, "reason", None)) if e)
        todo.extend(arg for arg in item.args if isinstance(arg, BaseException))


def deadline_text(seconds: float) -> str:
    """The failure text of a request that hit ``request_deadline``."""
    return f"no complete response within request_deadline={seconds:g} s"


def is_tls_error(exc: BaseException) -> bool:
    """:return: whether ``exc`` comes from TLS (a certificate or handshake problem)."""
    return any(isinstance(e, ssl.SSLError) for e in _error_chain(exc))


class _Deadline:
    """
    A watchdog for one request in this thread.

    When ``seconds`` pass before it is over, it shuts the request's socket down, which ends a read
    that is blocked or being fed one byte at a time.

    ``read_timeout`` bounds each read, not the request: urllib3 keeps reading until it has the bytes
    it asked for, so a server that trickles a body never trips it, and no check between reads can
    run. The connection pools below tell the watchdog which connection the request took.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.connection: Any = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    @classmethod
    def note_connection(cls, connection: Any) -> None:
        """Called by the pool in the requesting thread: the connection the request is sent on."""
        deadline = getattr(cls._current, "deadline", None)
        if deadline is not None:
            deadline.connection = connection

    def __enter__(self) -> _Deadline:
        self._current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._current.deadline = None

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with suppress(OSError):  # already closed: the request is ending anyway
                sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _Deadline.note_connection(connection)
        return connection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _Deadline.note_connection(connection)
        return connection


class _DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose pools let :class:`_Deadline` find the connection of a request."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }
