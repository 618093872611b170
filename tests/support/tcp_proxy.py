"""A fault-injecting TCP proxy on 127.0.0.1, between a client and the API emulator.

The emulator injects faults the API can answer with (HTTP statuses, bad bodies). This proxy injects
what happens below HTTP: a connection reset in the middle of a body, a server that accepts and then
never answers, a body trickled one byte at a time, a body cut short of its ``Content-Length``, and a
server that refuses connections while a search is under way.

It reads each request the client sends (keep-alive connections included), forwards it to the
upstream on a fresh connection, reads the whole response, and then either relays it or faults it.
Only requests whose path starts with one of :attr:`FaultProxy.paths` (the API, not the token
endpoint, by default) are counted and faulted.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

FaultKind = Literal["reset", "silent", "trickle", "short", "refuse"]
#: Every kind of fault the proxy produces.
FAULT_KINDS: tuple[FaultKind, ...] = ("reset", "silent", "trickle", "short", "refuse")


@dataclass
class ProxyFault:
    """
    Which requests to fault, and how.

    :param kind: ``reset`` (headers and half the body, then a TCP reset), ``silent`` (read the
        request, never answer), ``trickle`` (the body one byte every ``trickle_delay`` seconds),
        ``short`` (half the body announced by ``Content-Length``, then a clean close), ``refuse``
        (stop listening and drop every connection, so new connections are refused; once).
    :param every: fault the n-th counted request when ``n % every == 0`` (1: all of them).
    :param after: fault only requests after the first ``after`` counted ones.
    :param refuse_for: ``refuse``: listen again after this many seconds; ``None``: never.
    :param trickle_delay: ``trickle``: seconds between two bytes.
    """

    kind: FaultKind
    every: int = 1
    after: int = 0
    refuse_for: float | None = None
    trickle_delay: float = 0.02

    def applies(self, number: int) -> bool:
        """:return: whether the ``number``-th counted request (1-based) is faulted."""
        return number > self.after and (number - self.after) % self.every == 0


class FaultProxy:
    """
    The proxy, served by an event loop in a thread. Use as a context manager.

    :param upstream: the URL of the server behind the proxy, e.g. the emulator's.
    :param paths: path prefixes of the requests that are counted and faulted.
    :param tls: serve HTTPS with this server context (the upstream is still plain HTTP).
    """

    def __init__(
        self, upstream: str, *, paths: tuple[str, ...] = ("/voice",), tls: ssl.SSLContext | None = None
    ) -> None:
        self.tls = tls
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.paths = paths
        self.port = 0
        #: counted requests seen, and how many of them were faulted
        self.requests = 0
        self.faulted = 0
        self._fault: ProxyFault | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Listen on a free port of 127.0.0.1."""
        self._thread.start()
        self._run(self._listen())
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if not self._thread.is_alive():
            return
        self._run(self._shutdown(cancel=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, fault: ProxyFault | None) -> None:
        """Fault requests from now on as ``fault`` says (``None``: relay everything), counters at zero."""
        with self._lock:
            self._fault = fault
            self.requests = self.faulted = 0

    @contextmanager
    def faulting(self, fault: ProxyFault) -> Iterator[FaultProxy]:
        """:meth:`set_fault` for the ``with`` block, then relay everything again."""
        self.set_fault(fault)
        try:
            yield self
        finally:
            with self._lock:
                self._fault = None

    def _run(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self, *, cancel: bool = False) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        if cancel:  # the end: no connection handler, trickle or pending re-listen may outlive the loop
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _refuse(self, seconds: float | None) -> None:
        """Stop listening and drop every connection; listen again on the same port after ``seconds``."""
        await self._shutdown()
        if seconds is not None:
            await asyncio.sleep(seconds)
            await self._listen()

    def _pick(self, path: str) -> ProxyFault | None:
        if not path.startswith(self.paths):
            return None
        with self._lock:
            self.requests += 1
            fault = self._fault
            if fault is None or not fault.applies(self.requests):
                return None
            self.faulted += 1
            if fault.kind == "refuse":  # one refusal: once listening again, everything is relayed
                self._fault = None
            return fault

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                if self._server is None:
                    # Accepted just as a refusal began (its handler had not started, so the refusal
                    # could not drop it): refused connections must not relay a request either.
                    writer.transport.abort()
                    return
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    body = await reader.readexactly(_content_length(head))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                fault = self._pick(head.split(b" ", 2)[1].decode("latin-1"))
                if fault is not None and fault.kind == "refuse":
                    await self._refuse(fault.refuse_for)
                    return
                if fault is not None and fault.kind == "silent":
                    await reader.read()  # until the client gives up and closes
                    return
                response = await self._forward(head, body)
                if fault is None:
                    writer.write(response)
                    await writer.drain()
                    continue
                await self._send_faulted(writer, fault, response)
                return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        """:return: the upstream's whole response to the request, minus its ``Connection: close``."""
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(_with_header(head, b"Connection: close") + body)
            await up_writer.drain()
            response = await up_reader.read()
        finally:
            up_writer.close()
        response_head, _, response_body = response.partition(b"\r\n\r\n")
        lines = [line for line in response_head.split(b"\r\n") if line.lower() != b"connection: close"]
        return b"\r\n".join(lines) + b"\r\n\r\n" + response_body

    @staticmethod
    async def _send_faulted(writer: asyncio.StreamWriter, fault: ProxyFault, response: bytes) -> None:
        head, _, body = response.partition(b"\r\n\r\n")
        writer.write(head + b"\r\n\r\n")
        if fault.kind == "trickle":
            for index in range(len(body)):
                writer.write(body[index : index + 1])
                await writer.drain()
                await asyncio.sleep(fault.trickle_delay)
            return
        writer.write(body[: len(body) // 2])
        await writer.drain()
        if fault.kind == "reset":
            await asyncio.sleep(0.05)  # let the client read the partial body before the reset
            sock = writer.get_extra_info("socket")
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:  # short: a clean close, the body shorter than its Content-Length
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _with_header(head: bytes, header: bytes) -> bytes:
    """:return: the request head ``head`` with ``header`` replacing any ``Connection`` header."""
    lines = [line for line in head[:-4].split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, header]) + b"\r\n\r\n"
