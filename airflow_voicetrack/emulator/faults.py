"""Fault injection: settings, a deterministic schedule, and the ASGI middleware applying them.

Every fault is off by default and is both a CLI flag (``--unauthorized-rate 0.2``) and a key of
``PUT /_emulator/faults`` (``{"unauthorized_rate": 0.2}``). Rate faults apply to API calls only
(``/voice/...``), never to the token or admin endpoints, and are deterministic: a fault with rate
``r`` fires on the n-th call that reaches it exactly when ``floor(n * r)`` increases, so it hits a
fraction ``r`` of calls, evenly spaced (``0.5``: every 2nd call, ``0.25``: every 4th). Faults are
checked in this order, each counting only the calls that got past the previous ones: dropped
connection, 401, 403, 429, 5xx burst; then the handler runs and a 200 may still be malformed,
truncated or (page responses) carry an inconsistent envelope. The data faults
(``insert_during_paging``, ``delete_during_paging``) change the messages themselves between the
pages of a search (see :mod:`airflow_voicetrack.emulator.app`). Changing the settings restarts all
counters, so a test sees the same sequence every time.

Deviations (``inclusive_date_end``, ``filters_combine``, ``max_page_size``, ``max_range_days``) are
not faults but switches that make the emulator break one of the assumptions that
``python -m airflow_voicetrack.probe`` checks against the real API, so its tests can show that the
probe notices. They apply to ``POST /voice/tracking`` and to the truth endpoint alike.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_voicetrack.constants import MAX_PAGE_SIZE

RETRY_AFTER_MODES: tuple[str, ...] = ("seconds", "date", "none")
BURST_STATUSES: tuple[int, ...] = (500, 502, 503, 504)


def _fault(default: Any, help_text: str, *, switch: bool = False) -> Any:
    """``switch``: a 0/1 setting whose CLI flag alone means 1 (``--rate-limit-headers``)."""
    return field(default=default, metadata={"help": help_text, "switch": switch})


@dataclass
class FaultSettings:
    """
    Current fault settings.

    Field names are the ``PUT /_emulator/faults`` keys and, with ``-`` for ``_``, the CLI flags.
    """

    token_lifetime: float = _fault(3600.0, "lifetime of newly issued tokens in seconds (expires_in)")
    unauthorized_rate: float = _fault(
        0.0, "fraction of API calls answered 401 (as if the token were revoked)"
    )
    forbidden_rate: float = _fault(0.0, "fraction of API calls answered 403")
    rate_limit_rate: float = _fault(0.0, "fraction of API calls answered 429")
    retry_after_mode: str = _fault("seconds", "Retry-After of a 429: seconds, date (HTTP date) or none")
    retry_after: int = _fault(1, "the wait a 429 asks for, in seconds")
    rate_limit: float = _fault(
        0.0,
        "API calls accepted per second (a token bucket holding one second's calls); past it a 429 whose "
        "Retry-After (per retry_after_mode) is the whole seconds until the next call is accepted (0 = off)",
    )
    rate_limit_headers: int = _fault(
        0, "1: API responses carry RateLimit-Limit, -Remaining and -Reset (with rate_limit)", switch=True
    )
    revoke_every: int = _fault(0, "revoke every token issued so far at every this many-th API call (0 = off)")
    error_burst: int = _fault(0, "consecutive API calls failing with a 5xx in each burst (0 = off)")
    error_every: int = _fault(0, "a burst starts every this many API calls (0 = one burst, right away)")
    error_status: int = _fault(0, "status of burst failures: 500, 502, 503, 504, or 0 to rotate")
    latency_ms: float = _fault(0.0, "delay added to every API and token request, in milliseconds")
    drop_rate: float = _fault(0.0, "fraction of API calls whose connection is closed without a response")
    malformed_rate: float = _fault(0.0, "fraction of 200 API responses whose JSON body is cut short")
    truncated_rate: float = _fault(0.0, "fraction of 200 API responses whose connection closes mid-body")
    inconsistent_rate: float = _fault(0.0, "fraction of page responses with a self-contradicting envelope")
    insert_during_paging: int = _fault(0, "messages inserted into the range after page 0 of a search")
    delete_during_paging: int = _fault(0, "messages deleted from the range after page 0 of a search")
    # Deviations: the emulator behaves as an API that breaks one of our assumptions (see
    # ``airflow_voicetrack.probe``), so that the probe can be shown to notice.
    inclusive_date_end: int = _fault(
        0, "1: the range's end (to) is inclusive, [from, to] instead of half-open"
    )
    filters_combine: str = _fault("and", "how several filters combine: and, or")
    max_page_size: int = _fault(MAX_PAGE_SIZE, "largest page size accepted; larger gets a 400")
    max_range_days: float = _fault(0.0, "longest from..to range accepted, in days (0 = any)")

    def validate(self) -> None:
        """Check every value's range.

        :raises ValueError: naming the first bad setting.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be between 0 and 1")
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"{f.name} must be >= 0")
        if self.rate_limit_headers not in (0, 1):
            raise ValueError("rate_limit_headers must be 0 or 1")
        if self.inclusive_date_end not in (0, 1):
            raise ValueError("inclusive_date_end must be 0 or 1")
        if self.filters_combine not in ("and", "or"):
            raise ValueError("filters_combine must be and or or")
        if self.max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        if self.retry_after_mode not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after_mode must be one of {', '.join(RETRY_AFTER_MODES)}")
        if self.error_status not in (0, *BURST_STATUSES):
            raise ValueError("error_status must be 0, 500, 502, 503 or 504")
        if self.error_every and self.error_burst >= self.error_every:
            raise ValueError("error_burst must be smaller than error_every")

    def merged(self, updates: dict[str, Any]) -> FaultSettings:
        """A copy with ``updates`` applied and validated.

        :param updates: setting name -> value.
        :raises ValueError: on an unknown name, a wrong type or a bad value, naming it.
        """
        types = {f.name: f.type for f in fields(self)}
        values = asdict(self)
        for name, value in updates.items():
            if name not in types:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(types)}")
            kind = {"float": float, "int": int, "str": str}[str(types[name])]
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"{name} must be a {kind.__name__}")
            try:
                converted = kind(value)
            except ValueError:
                raise ValueError(f"{name} must be a {kind.__name__}") from None
            if kind is int and converted != value and not isinstance(value, str):
                raise ValueError(f"{name} must be an integer")
            values[name] = converted
        result = FaultSettings(**values)
        result.validate()
        return result


class FaultSchedule:
    """The current settings plus the counters that make them deterministic.

    :param settings: initial settings.
    """

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self.settings = settings or FaultSettings()
        self.counters: dict[str, int] = {}
        #: how often each fault fired (``/_emulator/stats`` ``faults_fired``), so a test can show that
        #: the fault it set really happened; kept across setting changes, cleared with the stats
        self.fired: Counter[str] = Counter()
        #: the rate limit's token bucket: calls it holds, and when it was last filled (monotonic)
        self._bucket = (0.0, -math.inf)

    def replace(self, settings: FaultSettings) -> None:
        """Install new settings and restart every counter.

        :param settings: the new settings.
        """
        self.settings = settings
        self.counters = {}
        self._bucket = (0.0, -math.inf)

    def _count(self, name: str) -> int:
        n = self.counters.get(name, 0) + 1
        self.counters[name] = n
        return n

    def fires(self, name: str, rate: float) -> bool:
        """Count one call reaching fault ``name``; ``True`` when the fault hits it.

        :param name: counter name.
        :param rate: fraction of calls to hit.
        """
        if rate <= 0:
            return False
        n = self._count(name)
        hit = math.floor(n * rate + 1e-9) > math.floor((n - 1) * rate + 1e-9)
        if hit:
            self.fired[name] += 1
        return hit

    def rate_limited(self, now: float) -> float | None:
        """
        Take one call from the rate limit's token bucket.

        :param now: monotonic time.
        :return: ``None`` when the call is accepted, else the seconds until one would be.
        """
        rate = self.settings.rate_limit
        if rate <= 0:
            return None
        tokens = self._fill(now)
        if tokens < 1:
            return (1 - tokens) / rate
        self._bucket = (tokens - 1, now)
        return None

    def rate_limit_headers(self, now: float) -> list[tuple[bytes, bytes]]:
        """:return: the ``RateLimit-*`` headers of the bucket's state, empty when they are off."""
        s = self.settings
        if not (s.rate_limit > 0 and s.rate_limit_headers):
            return []
        capacity = max(1.0, s.rate_limit)
        tokens = self._fill(now)
        return [
            (b"ratelimit-limit", str(math.floor(capacity)).encode()),
            (b"ratelimit-remaining", str(math.floor(tokens)).encode()),
            (b"ratelimit-reset", str(math.ceil((capacity - tokens) / s.rate_limit)).encode()),
        ]

    def _fill(self, now: float) -> float:
        rate = self.settings.rate_limit
        capacity = max(1.0, rate)
        tokens, filled = self._bucket
        tokens = capacity if filled == -math.inf else min(capacity, tokens + (now - filled) * rate)
        self._bucket = (tokens, now)
        return tokens

    def revokes(self) -> bool:
        """Count one API call; ``True`` when every token is to be revoked before it is served."""
        every = self.settings.revoke_every
        return every > 0 and self._count("revoke") % every == 0

    def burst_status(self) -> int | None:
        """Count one API call for the 5xx bursts; the status to fail it with, or ``None``."""
        s = self.settings
        if s.error_burst <= 0:
            return None
        n = self._count("burst")
        position = (n - 1) % s.error_every if s.error_every else n - 1
        if position >= s.error_burst:
            return None
        failure = self._count("burst_failures")
        self.fired["error_burst"] += 1
        return s.error_status or BURST_STATUSES[(failure - 1) % len(BURST_STATUSES)]

    def inconsistent_variant(self) -> int | None:
        """
        Count one page response; return ``None`` or which contradiction to put in its envelope.

        1: ``numberOfElements`` != items on the page, 2: ``totalPages`` != ceil(totalElements / size).
        """
        if not self.fires("inconsistent", self.settings.inconsistent_rate):
            return None
        return 1 if self._count("inconsistent_variant") % 2 else 2


def retry_after_header(mode: str, seconds: int, now: float | None = None) -> str | None:
    """The ``Retry-After`` value for a 429, or ``None`` when the header is left out.

    :param mode: one of :data:`RETRY_AFTER_MODES`.
    :param seconds: the wait asked for.
    :param now: current epoch time (default: now).
    """
    if mode == "seconds":
        return str(seconds)
    if mode == "date":
        at = math.ceil((time.time() if now is None else now) + seconds)
        return email.utils.formatdate(at, usegmt=True)
    return None


def error_body(status: int) -> tuple[bytes, bytes]:
    """
    Return the body and content type of an injected 5xx.

    The API's error body for 500, an HTML page (as a proxy or load balancer would send) for
    502/503/504.

    :param status: the status code.
    """
    if status == 500:
        return (
            msgspec.json.encode({"code": "500000000", "developerMessage": "Internal Server Error"}),
            b"application/json",
        )
    text = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
    return f"<html><body><h1>{status} {text}</h1></body></html>".encode(), b"text/html"


async def send_simple(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send a complete response.

    :param send: ASGI send.
    :param status: status code.
    :param body: body bytes.
    :param content_type: Content-Type value.
    :param headers: further ``(name, value)`` byte pairs.
    """
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def close_connection(send: Send) -> None:
    """Close the client's TCP connection at once, whatever has been sent so far.

    uvicorn passes its per-request cycle's bound ``send``; its ``transport`` is the connection.
    Waiting until uvicorn notices the disconnect keeps it from answering or logging an error.

    :param send: the ASGI send uvicorn gave the application.
    """
    send = getattr(send, "__wrapped__", send)  # past the middleware's own wrappers
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("dropping connections needs uvicorn's HTTP protocol")
    transport.close()
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.001)


async def _drain(receive: Receive) -> None:
    # Reading the request body first makes the close a clean FIN rather than a reset.
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


class InFlight:
    """Search requests in flight: the most at once, and every request's span on the monotonic clock.

    A client's concurrency is seen here, from the server's side, as it is on the real service's: how
    many searches overlapped, and when each began and ended (latency and faults included).

    :param keep: the most recent spans kept (the oldest are dropped beyond).
    """

    def __init__(self, keep: int = 100_000) -> None:
        self.current = 0
        self.most = 0
        self.spans: deque[tuple[float, float]] = deque(maxlen=keep)
        #: how many search responses of each status were sent
        self.statuses: Counter[int] = Counter()
        #: when each 429 was sent (monotonic clock)
        self.refused_at: deque[float] = deque(maxlen=keep)

    def begin(self) -> float:
        """Count a request in; return its start time."""
        self.current += 1
        self.most = max(self.most, self.current)
        return time.monotonic()

    def end(self, started: float) -> None:
        """Count a request out and keep its span."""
        self.current -= 1
        self.spans.append((started, time.monotonic()))

    def reset(self) -> None:
        """Forget the spans; the most at once restarts from the requests in flight now."""
        self.most = self.current
        self.spans.clear()
        self.statuses.clear()
        self.refused_at.clear()


class FaultMiddleware:
    """Raw ASGI middleware: counts requests, adds latency and injects the configured faults.

    :param app: the emulator's ASGI application.
    :param schedule: the shared fault schedule.
    :param count_request: called with ``(method, path)`` for every non-admin request.
    :param auth_error: builds the body of an injected 401/403 from the status.
    :param in_flight: tracks the search requests (``search_path``) from arrival to the last byte sent.
    :param search_path: the path of the search endpoint.
    :param revoke_tokens: revokes every token issued so far (the ``revoke_every`` fault).
    """

    def __init__(
        self,
        app: ASGIApp,
        schedule: FaultSchedule,
        count_request: Callable[[str, str], None],
        auth_error: Callable[[int], bytes],
        in_flight: InFlight,
        search_path: str,
        revoke_tokens: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.schedule = schedule
        self.count_request = count_request
        self.auth_error = auth_error
        self.in_flight = in_flight
        self.search_path = search_path
        self.revoke_tokens = revoke_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, counting search requests in flight."""
        if scope["type"] != "http" or scope.get("path") != self.search_path:
            await self._handle(scope, receive, send)
            return
        started = self.in_flight.begin()

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.in_flight.statuses[message["status"]] += 1
                if message["status"] == 429:
                    self.in_flight.refused_at.append(time.monotonic())
            await send(message)

        counting.__wrapped__ = send  # type: ignore[attr-defined]
        try:
            await self._handle(scope, receive, counting)
        finally:
            self.in_flight.end(started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        self.count_request(scope["method"], path)
        schedule = self.schedule
        s = schedule.settings
        if s.latency_ms > 0:
            await asyncio.sleep(s.latency_ms / 1000)
        if not path.startswith("/voice/"):
            await self.app(scope, receive, send)
            return
        if schedule.fires("drop", s.drop_rate):
            await _drain(receive)
            await close_connection(send)
            return
        if schedule.revokes():
            self.revoke_tokens()
        wait = schedule.rate_limited(time.monotonic())
        if wait is not None:
            await self._too_many_requests(send, math.ceil(wait))
            return
        if s.rate_limit > 0 and s.rate_limit_headers:
            send = self._with_rate_limit_headers(send)
        for name, rate, status in (
            ("unauthorized", s.unauthorized_rate, 401),
            ("forbidden", s.forbidden_rate, 403),
        ):
            if schedule.fires(name, rate):
                await send_simple(send, status, self.auth_error(status), b"application/json")
                return
        if schedule.fires("rate_limit", s.rate_limit_rate):
            await self._too_many_requests(send, s.retry_after)
            return
        burst = schedule.burst_status()
        if burst is not None:
            body, content_type = error_body(burst)
            await send_simple(send, burst, body, content_type)
            return
        if s.malformed_rate <= 0 and s.truncated_rate <= 0:
            await self.app(scope, receive, send)
            return
        await self._with_body_faults(scope, receive, send)

    async def _too_many_requests(self, send: Send, seconds: int) -> None:
        value = retry_after_header(self.schedule.settings.retry_after_mode, seconds)
        headers = [(b"retry-after", value.encode())] if value else []
        headers += self.schedule.rate_limit_headers(time.monotonic())
        body = msgspec.json.encode({"code": "429000000", "developerMessage": "Too Many Requests"})
        await send_simple(send, 429, body, b"application/json", headers)

    def _with_rate_limit_headers(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self.schedule.rate_limit_headers(time.monotonic())
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        return sending

    async def _with_body_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        s, schedule = self.schedule.settings, self.schedule
        if start.get("status") == 200 and body:
            if schedule.fires("malformed", s.malformed_rate):
                body = body[: max(1, len(body) * 2 // 3)]
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                start = {**start, "headers": headers}
            elif schedule.fires("truncated", s.truncated_rate):
                await send(start)
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                await close_connection(send)
                return
        await send(start)
        await send({"type": "http.response.body", "body": body})
