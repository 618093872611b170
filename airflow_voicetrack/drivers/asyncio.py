"""
The async driver: protocol flows run with ``httpx``, pages fetched by asyncio tasks.

Twin of :mod:`airflow_voicetrack.drivers.sync`. The transport comes first (:func:`new_client`,
:func:`send`: one request, held to ``request_deadline``, its failures mapped to a
:class:`~airflow_voicetrack.protocol.TransportFailure`), then :class:`AsyncDriver`, which performs
what a flow asks for. Unlike the sync driver's, the access token is not the driver's own: it is a
:class:`SharedToken`, one per connection and event loop, so that the many triggers a triggerer runs
for one connection share it. ``httpx`` drops the ``Authorization`` header when a redirect leads to
another origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Iterable
from functools import lru_cache
from typing import Any, TypeVar

import anyio
import httpx
from airflow.sdk.log import mask_secret

from airflow_voicetrack.drivers.errors import deadline_text, is_tls_error
from airflow_voicetrack.protocol import (
    Action,
    Flow,
    Gather,
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
    TransportErrorKind,
    TransportFailure,
    token_flow,
)
from airflow_voicetrack.protocol.calls import Log

T = TypeVar("T")


def new_client(settings: Settings) -> httpx.AsyncClient:
    """An ``httpx`` client configured from ``settings``; it loads the CA bundle: build it off the loop."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        verify=ssl_context(settings.verify_ssl),
        limits=httpx.Limits(max_connections=settings.max_concurrency + 1),
        follow_redirects=True,
    )


async def send(
    client: httpx.AsyncClient, request: Request, token: str | None, settings: Settings
) -> Response | TransportFailure:
    """
    Send ``request`` (with ``token``) on ``client``, within the deadline.

    :return: the response, or what went wrong when none came back (see :func:`error_kind`).
    """
    try:
        # httpx's read timeout, like urllib3's, bounds each read: a trickled body needs a total.
        # anyio's own cancel scope (httpx runs on anyio): a task wrapped by asyncio.wait_for
        # could be left stuck in anyio's connect when the trigger is cancelled.
        with anyio.fail_after(settings.request_deadline):
            reply = await client.request(**request.arguments(token))
    except TimeoutError:
        return TransportFailure("deadline", deadline_text(settings.request_deadline))
    except httpx.TransportError as exc:
        return TransportFailure(error_kind(exc), str(exc) or type(exc).__name__)
    return Response(reply.status_code, reply.headers, reply.content)


def error_kind(exc: httpx.TransportError) -> TransportErrorKind:
    """:return: the kind of transport failure ``exc`` is."""
    if is_tls_error(exc):
        return "tls"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "protocol"


@lru_cache(maxsize=2)
def ssl_context(verify: bool) -> ssl.SSLContext:
    """
    The TLS context of every async client in this process, one per ``verify_ssl`` value.

    Building one loads the CA bundle, with the GIL held: a triggerer starting a thousand triggers
    must not pay that per trigger.
    """
    return httpx.create_ssl_context(verify=verify)


class AsyncDriver:
    """
    Runs protocol flows with an ``httpx.AsyncClient`` and asyncio tasks.

    :param settings: the validated connection.
    :param log: where flows log (the hook's logger).
    :param conn_id: the connection's id, which names the :class:`SharedToken`.
    :param limits: the connection's limiter in this process (not per event loop, unlike the token)
        and the hook's retry budget; ``None`` for a driver that only gets tokens (no API call).
    """

    def __init__(self, settings: Settings, log: Log, conn_id: str, limits: Limits | None) -> None:
        self.settings = settings
        self.log = log
        self.conn_id = conn_id
        self.limits = limits
        self.client = new_client(settings)

    async def run(self, flow: Flow[T]) -> T:
        """Perform each action ``flow`` yields until it returns; return its value."""
        reply: Any = None
        try:
            while True:
                reply = await self._perform(flow.send(reply))
        except StopIteration as done:
            return done.value
        finally:
            flow.close()  # a flow cancelled half-way gives its limiter slot back

    async def _perform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return await send(self.client, action.request, _bearer(action), self.settings)
        if isinstance(action, Sleep):
            return await asyncio.sleep(action.seconds)
        if isinstance(action, GetToken):
            return await self.token(action.rejected)
        if isinstance(action, GetLimits):
            return self.limits
        return await self._gather(action)

    async def _gather(self, gather: Gather) -> list[Any]:
        slots = asyncio.Semaphore(gather.limit)

        async def run(flow: Flow[Any]) -> Any:
            async with slots:
                return await self.run(flow)

        tasks = [asyncio.ensure_future(run(flow)) for flow in gather.flows]
        try:
            return await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def token(self, rejected: Token | None = None) -> Token:
        """Return a usable token, shared by the hooks of this connection and event loop."""
        return await SharedToken.of(self.conn_id, self.settings).get(self.settings, self.log, rejected)

    async def search(self, run: SearchRun) -> AsyncGenerator[Any, None]:
        """Yield the messages of ``run``, one task per page, at most ``max_concurrency`` in flight."""
        tasks: dict[asyncio.Future[Any], PageFetch] = {}
        done: Iterable[asyncio.Future[Any]] = ()
        if not run.done:  # the token first, alone: bad credentials cost one token request, not one per page
            await self.token()
        try:
            while True:
                fetches, messages = run.step((tasks.pop(task), task.result()) for task in done)
                tasks.update((asyncio.ensure_future(self.run(run.flow(fetch))), fetch) for fetch in fetches)
                for message in messages:
                    yield message
                if run.done:
                    return
                done = (await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))[0]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()


def _bearer(send: Send) -> str | None:
    return None if send.token is None else send.token.value


class SharedToken:
    """
    The access token of one connection, shared by every async driver in one event loop.

    A triggerer runs many triggers for the same connection in one loop: they use one token between
    them, and when it must be renewed (it is about to expire, or the API rejected it) a single request
    fetches the next one for all waiters. That request runs as a task of its own, awaited through
    :func:`asyncio.shield`, so a trigger cancelled while waiting does not cancel it for the others;
    and on an HTTP client of its own, so a hook closed meanwhile cannot break it. One token per
    connection and lifetime also means one secret per lifetime for the secrets masker, whose cost
    grows with every secret a long-lived process registers.
    """

    #: event loop -> connection identity -> its shared token; ``dag.test()`` runs each trigger
    #: under its own ``asyncio.run``, and a token's lock and fetch task belong to one loop.
    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], SharedToken]] = (
        weakref.WeakKeyDictionary()
    )
    _registry_lock = threading.Lock()

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.token: Token | None = None
        self.fetch: asyncio.Future[Token] | None = None

    @classmethod
    def of(cls, conn_id: str, settings: Settings) -> SharedToken:
        """:return: the shared token of the connection (credentials included) in the running loop."""
        secret = hashlib.sha256(settings.client_secret.encode()).hexdigest()
        key = (conn_id, settings.token_url, settings.client_id, secret, settings.scope or "")
        loop = asyncio.get_running_loop()
        with cls._registry_lock:
            return cls._by_loop.setdefault(loop, {}).setdefault(key, cls(conn_id))

    async def get(self, settings: Settings, log: Log, rejected: Token | None = None) -> Token:
        """
        Return a fresh token, fetched once for every driver waiting for it.

        :param rejected: a token the API refused; it is replaced unless another driver did already.
        """
        token = self.token
        if token is not None and token is not rejected and token.is_fresh(time.monotonic()):
            return token
        if self.fetch is None:
            self.fetch = asyncio.ensure_future(self._fetch(settings, log))
            # Retrieved here too: every waiter may have been cancelled when it fails.
            self.fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(self.fetch)

    async def _fetch(self, settings: Settings, log: Log) -> Token:
        try:
            driver = await asyncio.to_thread(AsyncDriver, settings, log, self.conn_id, None)
            try:
                token = await driver.run(token_flow(settings, log))
            finally:
                await driver.close()
            await amask_secret(token.value)  # before any driver can use it
            self.token = token
            return token
        finally:
            self.fetch = None


async def amask_secret(value: str) -> None:
    """
    Register ``value`` with the secrets masker without stalling the event loop.

    ``add_mask`` recompiles one pattern of every secret the process has registered so far: in a
    long-lived triggerer that grows costly, so the compiling happens in a thread. Registering the
    same value again below is then cheap, and also tells the supervisor. The masker's module is
    private to Airflow: without it, the value is only registered below.
    """
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:  # a later Airflow moved it: register without the warm-up
        pass
    else:
        await asyncio.to_thread(_secrets_masker().add_mask, value)
    try:
        from airflow.sdk.log import amask_secret as airflow_amask_secret
    except ImportError:  # Airflow < 3.3
        mask_secret(value)
    else:
        await airflow_amask_secret(value)
