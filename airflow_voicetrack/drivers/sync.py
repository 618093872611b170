"""
The sync driver: protocol flows run with ``requests``, pages fetched from a thread pool.

Twin of :mod:`airflow_voicetrack.drivers.asyncio`. The transport comes first (:func:`new_session`,
:func:`send`: one request, held to ``request_deadline``, its failures mapped to a
:class:`~airflow_voicetrack.protocol.TransportFailure`), then :class:`SyncDriver`, which performs
what a flow asks for. ``requests`` drops the ``Authorization`` header when a redirect leads to
another host.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from typing import Any, TypeVar

import requests
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from airflow_voicetrack.drivers.errors import deadline_text, error_chain, is_tls_error
from airflow_voicetrack.protocol import (
    Action,
    Flow,
    GetLimits,
    GetToken,
    Limits,
    PageFetch,
    Request,
    Response,
    SearchRun,
    Send,
    Settings,
    Sleep,
    Token,
    TokenCache,
    TransportErrorKind,
    TransportFailure,
    token_flow,
)
from airflow_voicetrack.protocol.calls import Log

T = TypeVar("T")

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
        isinstance(e, NewConnectionError) for e in error_chain(exc)
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


class SyncDriver:
    """
    Runs protocol flows with a ``requests`` session and a thread pool.

    Holds the access token (thread-safe).

    :param settings: the validated connection.
    :param log: where flows log (the hook's logger).
    :param limits: the connection's limiter in this process and the hook's retry budget.
    """

    def __init__(self, settings: Settings, log: Log, limits: Limits) -> None:
        self.settings = settings
        self.log = log
        self.limits = limits
        self.session = new_session(settings, pool_size=settings.max_concurrency + 1)
        self._tokens = TokenCache()
        self._token_lock = threading.Lock()

    def run(self, flow: Flow[T]) -> T:
        """Perform each action ``flow`` yields until it returns; return its value."""
        reply: Any = None
        try:
            while True:
                reply = self._perform(flow.send(reply))
        except StopIteration as done:
            return done.value
        finally:
            flow.close()  # a flow stopped half-way gives its limiter slot back

    def _perform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return send(self.session, action.request, _bearer(action), self.settings)
        if isinstance(action, Sleep):
            return time.sleep(action.seconds)
        if isinstance(action, GetToken):
            return self.token(action.rejected)
        if isinstance(action, GetLimits):
            return self.limits
        with ThreadPoolExecutor(action.limit, thread_name_prefix="voicetrack") as pool:
            return list(pool.map(self.run, action.flows))

    def token(self, rejected: Token | None = None) -> Token:
        """Return a usable token, getting a new one unless another thread replaced ``rejected`` already."""
        with self._token_lock:
            token = self._tokens.usable(rejected, time.monotonic())
            if token is None:
                token = self._tokens.token = self.run(token_flow(self.settings, self.log))
                mask_secret(token.value)
            return token

    def search(self, run: SearchRun) -> Iterator[Any]:
        """Yield the messages of ``run``, its pages fetched from a pool of ``max_concurrency`` threads."""
        pending: dict[Future[Any], PageFetch] = {}
        finished: Iterable[Future[Any]] = ()
        if not run.done:  # the token first, alone: bad credentials cost one token request, not one per page
            self.token()
        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="voicetrack") as pool:
            try:
                while True:
                    fetches, messages = run.step((pending.pop(f), f.result()) for f in finished)
                    # Requests start before the messages are yielded: they run while the caller works.
                    pending.update((pool.submit(self.run, run.flow(fetch)), fetch) for fetch in fetches)
                    yield from messages
                    if run.done:
                        return
                    finished = wait(pending, return_when=FIRST_COMPLETED).done
            finally:
                for future in pending:
                    future.cancel()

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def _bearer(send: Send) -> str | None:
    return None if send.token is None else send.token.value
