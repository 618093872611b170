"""What to do after each response: succeed, refresh the token, retry (and how long to wait) or fail."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import pendulum

from airflow_voicetrack.constants import (
    MAX_TOKEN_REFRESHES,
    MAX_TOKEN_RENEWALS,
)
from airflow_voicetrack.exceptions import (
    VoiceTrackAPIError,
    VoiceTrackAuthError,
    VoiceTrackConnectionError,
    VoiceTrackNotFoundError,
    VoiceTrackResponseError,
    VoiceTrackTransientError,
)
from airflow_voicetrack.protocol.bodies import ResponseFormatError, Token
from airflow_voicetrack.protocol.http import Request, Response
from airflow_voicetrack.protocol.limits import (
    Limiter,
    Limits,
    LimitStats,
    Permit,
    RetryBudget,
    pause_seconds,
)
from airflow_voicetrack.protocol.settings import RetryPolicy, Settings

_log = logging.getLogger(__name__)


class Log(Protocol):
    """Where flows log: a :class:`logging.Logger` or a hook's ``log``."""

    def info(self, msg: str, /, *args: Any) -> Any:
        """Log at INFO."""

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Log at WARNING."""


T = TypeVar("T")

#: HTTP statuses that are retried with backoff.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How often a rejected request asks whether its token served the requests still carrying it, in s.
TOKEN_VERDICT_POLL = 0.005


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """
    Read a ``Retry-After`` header.

    :param value: a ``Retry-After`` header: seconds or an HTTP date.
    :param now: the current wall-clock time (aware), for the HTTP-date form.
    :return: seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Success(Generic[T]):
    """The call succeeded with ``value``."""

    value: T


@dataclass(frozen=True)
class Retry:
    """Send the request again after ``wait`` seconds."""

    wait: float
    reason: str


@dataclass(frozen=True)
class RefreshToken:
    """
    Get a new token (discarding the rejected one), then send the request again at once.

    ``expired``: the rejected token had served a 2xx, so it expired or was revoked (no credential
    budget spent).
    """

    status: int
    expired: bool = False


#: ``deadline``: no complete response within ``request_deadline`` (a trickling server, say).
TransportErrorKind = Literal["connect", "timeout", "deadline", "protocol", "tls"]


class Call(Generic[T]):
    """
    The decisions for one logical call: its retries and its token refreshes.

    A transport sends :attr:`request`, then hands the outcome to :meth:`on_response` or
    :meth:`on_transport_error` and does what the returned decision says. Permanent failures and
    exhausted retries are raised as typed errors.

    :param request: what to send.
    :param parse: reads a 2xx body; raises :class:`ResponseFormatError` when it is malformed.
    :param policy: retry limits.
    :param started: monotonic time of the first attempt.
    :param secrets: values to scrub from any text taken from a response or an exception.
    :param budget: the hook's retry budget, asked before every retry; ``None``: no budget.
    """

    def __init__(
        self,
        request: Request,
        parse: Callable[[bytes], T],
        policy: RetryPolicy,
        *,
        started: float,
        secrets: Iterable[str] = (),
        rng: random.Random | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        self.request = request
        self.parse = parse
        self.policy = policy
        self.started = started
        self.secrets = {s for s in secrets if s}
        self.retries = 0
        #: new tokens asked for after a 401/403 of a token that had served no 2xx (at most
        #: :data:`MAX_TOKEN_REFRESHES`): the credentials or permissions may be wrong
        self.refreshes = 0
        #: new tokens asked for after a 401/403 of a token that had served a 2xx (expired or
        #: revoked; at most :data:`MAX_TOKEN_RENEWALS`, a guard against a server that never settles)
        self.renewals = 0
        self.budget = budget
        #: why the retry budget refused the last retry, ``None`` when it did not
        self._budget_refusal: str | None = None
        self._rng = rng
        self._last_failure = ""
        #: the ``Retry-After`` wait (seconds, uncapped) of the last failure, ``None`` when it had none
        self._last_retry_after: float | None = None

    def on_response(
        self,
        response: Response,
        *,
        now: float,
        wall_now: datetime | None = None,
        token_served: bool = False,
    ) -> Success[T] | Retry | RefreshToken:
        """
        Decide what follows a response: success, a new token, a retry, or an error (raised).

        A 401 or 403 gets a new token. When the rejected token had already served a 2xx, it expired
        or was revoked: that costs no credential budget (up to :data:`MAX_TOKEN_RENEWALS`). A
        token rejected before serving any 2xx counts: after :data:`MAX_TOKEN_REFRESHES` of them the
        call fails, saying whether the credentials or the permissions are wrong.

        :param now: monotonic time now.
        :param wall_now: aware wall-clock time now (for ``Retry-After`` dates); defaults to the clock.
        :param token_served: whether the token the request carried had served a 2xx (to any request)
            when this response came.
        """
        status = response.status
        if 200 <= status < 300:
            try:
                return Success(self.parse(response.body))
            except ResponseFormatError as exc:
                failure = f"HTTP {status} with {self.redact(str(exc))}"
                return self._retry_or_raise(failure, None, now, VoiceTrackResponseError)
        if status in (401, 403) and self.request.needs_token:
            if token_served and self.renewals < MAX_TOKEN_RENEWALS:
                self.renewals += 1
                return RefreshToken(status, expired=True)
            if not token_served and self.refreshes < MAX_TOKEN_REFRESHES:
                self.refreshes += 1
                return RefreshToken(status)
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), wall_now or pendulum.now("UTC")
            )
            return self._retry_or_raise(f"HTTP {status}", retry_after, now, VoiceTrackTransientError)
        raise error_from_response(response, self.request.label, self.redact)

    def on_transport_error(self, kind: TransportErrorKind, detail: str, *, now: float) -> Retry:
        """
        Decide what follows a transport error: a retry, or an error (raised).

        :param kind: ``tls`` fails at once; ``connect``, ``timeout``, ``deadline`` and ``protocol`` are
            retried.
        :param detail: the library's description of the error.
        """
        detail = self.redact(detail)
        host = urlsplit(self.request.url).netloc
        if kind == "tls":
            raise VoiceTrackConnectionError(
                f"{self.request.label}: TLS with {host} failed: {detail}; check the certificate or the "
                "connection's verify_ssl extra",
                kind="tls",
            )
        if kind == "connect":
            retry = self._next_retry(f"cannot connect to {host}: {detail}", None, now)
            if retry is None:
                raise VoiceTrackConnectionError(
                    f"{self.request.label}: host {host} unreachable ({self._give_up_text(now)})",
                    kind="unreachable",
                )
            return retry
        return self._retry_or_raise(f"{kind} error: {detail}", None, now, VoiceTrackTransientError)

    def redact(self, text: str) -> str:
        """:return: ``text`` with every known secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _retry_or_raise(
        self, failure: str, retry_after: float | None, now: float, error: type[Exception]
    ) -> Retry:
        retry = self._next_retry(failure, retry_after, now)
        if retry is None:
            text = f"{self.request.label}: {self._give_up_text(now)}"
            if issubclass(error, VoiceTrackTransientError):
                raise error(text, retry_after=self._last_retry_after)
            raise error(text)
        return retry

    def _next_retry(self, failure: str, retry_after: float | None, now: float) -> Retry | None:
        """:return: the next retry, or ``None`` when the limits forbid one."""
        self._last_failure = failure
        self._last_retry_after = retry_after
        wait = self.policy.backoff(self.retries + 1, self._rng) if retry_after is None else retry_after
        wait = min(wait, self.policy.max_retry_wait)
        if self.retries >= self.policy.max_retries or now - self.started + wait > self.policy.max_retry_time:
            return None
        if self.budget is not None and not self.budget.spend(self.retries + 1, now):
            self._budget_refusal = self.budget.describe(now)
            return None
        self.retries += 1
        return Retry(wait, failure)

    def _give_up_text(self, now: float) -> str:
        asked = "" if self._last_retry_after is None else f" (Retry-After: {self._last_retry_after:g} s)"
        if self._budget_refusal is not None:
            return (
                f"giving up after {self.retries} retries in {now - self.started:.1f} s: the hook's retry "
                f"budget is spent ({self._budget_refusal}), so the service is failing for many requests; "
                f"last failure: {self._last_failure}{asked}"
            )
        return (
            f"giving up after {self.retries} retries in {now - self.started:.1f} s "
            f"(max_retries={self.policy.max_retries}, max_retry_time={self.policy.max_retry_time:g} s); "
            f"last failure: {self._last_failure}{asked}"
        )


def error_from_response(
    response: Response, context: str, redact: Callable[[str], str] = lambda text: text
) -> VoiceTrackAPIError:
    """
    Map an error response to a typed exception.

    Reads the API's ``{code, developerMessage, properties}`` body, and the token endpoint's
    ``{error, message}`` / ``{error, error_description}`` bodies.

    :param context: what was being done, e.g. ``"POST /voice/tracking"``.
    :param redact: scrubs secrets from text taken from the body.
    """
    try:
        data = json.loads(response.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    code = message = ""
    properties: dict[str, Any] = {}
    if isinstance(data, dict):
        code = str(data.get("code") or data.get("error") or "")
        message = str(
            data.get("developerMessage") or data.get("message") or data.get("error_description") or ""
        )
        if isinstance(data.get("properties"), dict):
            properties = {redact(str(key)): redact(str(value)) for key, value in data["properties"].items()}
    args = (response.status, redact(code), redact(message), properties, context)
    if response.status == 401:
        return VoiceTrackAuthError(*args, reason="credentials")
    if response.status == 403:
        return VoiceTrackAuthError(*args, reason="permissions")
    if response.status == 404:
        return VoiceTrackNotFoundError(*args)
    return VoiceTrackAPIError(*args)


# --------------------------------------------------------------------------------------------
# Flows: one generator per protocol exchange, driven by a sync and an async driver


@dataclass(frozen=True)
class Send:
    """
    Send ``request``, with ``token`` as its bearer when set.

    Reply with a :class:`Response`, or a :class:`TransportFailure` when none came back.
    """

    request: Request
    token: Token | None


@dataclass(frozen=True)
class Sleep:
    """Sleep ``seconds``; reply with ``None``."""

    seconds: float


@dataclass(frozen=True)
class GetToken:
    """Reply with a usable access token, a new one unless another request replaced ``rejected`` already."""

    rejected: Token | None


@dataclass(frozen=True)
class GetLimits:
    """Reply with the :class:`~airflow_voicetrack.protocol.limits.Limits` of the connection and hook."""


@dataclass(frozen=True)
class Gather:
    """Run ``flows`` concurrently, at most ``limit`` at once; reply with their results, in order."""

    flows: list[Flow[Any]]
    limit: int


@dataclass(frozen=True)
class TransportFailure:
    """What a driver replies to :class:`Send` when no response came back."""

    kind: TransportErrorKind
    detail: str


Action = Send | Sleep | GetToken | GetLimits | Gather
#: A protocol exchange: yields actions for a driver, receives their outcome, returns its value.
Flow = Generator[Action, Any, T]


def call_flow(
    request: Request,
    parse: Callable[[bytes], T],
    policy: RetryPolicy,
    *,
    secrets: Iterable[str] = (),
    log: Log | None = None,
    clock: Callable[[], float] = time.monotonic,
    stats: LimitStats | None = None,
) -> Flow[T]:
    """
    Send one logical request until it succeeds: retries, ``Retry-After``, token refreshes, errors.

    The shape of httpx's ``auth_flow``: a driver performs each yielded action (:class:`Send`,
    :class:`Sleep`, :class:`GetToken`, :class:`GetLimits`) and sends its outcome back; the decisions
    are :class:`Call`'s. API calls (requests that carry a token) go through the connection's
    :class:`~airflow_voicetrack.protocol.limits.Limiter` and the hook's retry budget; token
    requests do not.

    :param request: what to send.
    :param parse: reads the 2xx body.
    :param policy: retry limits.
    :param secrets: values to scrub from any error text (the token in use is added).
    :param log: where retries and token refreshes are logged.
    :param clock: monotonic time, for the retry limits.
    :param stats: where the sends, pauses, 429s and retries of this call are counted.
    :return: the parsed body.
    :raises VoiceTrackError: the typed error of a failure that retrying does not fix.
    """
    log = log or _log
    limits: Limits | None = (yield GetLimits()) if request.needs_token else None
    budget = None if limits is None else limits.budget
    call = Call(request, parse, policy, started=clock(), secrets=secrets, budget=budget)
    token: Token | None = (yield GetToken(None)) if request.needs_token else None
    while True:
        if token is not None:
            call.secrets.add(token.value)
        if limits is None:
            reply, served = (yield Send(request, token)), False
        else:
            reply, served = yield from _limited_send(limits, request, token, policy, stats, clock)
        decision: Success[T] | Retry | RefreshToken
        if isinstance(reply, TransportFailure):
            decision = call.on_transport_error(reply.kind, reply.detail, now=clock())
        else:
            decision = call.on_response(reply, now=clock(), token_served=served)
        if isinstance(decision, Success):
            return decision.value
        if isinstance(decision, RefreshToken):
            if decision.expired:
                log.info(
                    "%s: HTTP %s, the token expired or was revoked; getting a new one",
                    request.label,
                    decision.status,
                )
            else:
                log.info("%s: HTTP %s, getting a new token", request.label, decision.status)
            token = yield GetToken(token)
        else:
            if stats is not None:
                stats.count(retry=True)
            log.warning("%s: retrying in %.2f s after %s", request.label, decision.wait, decision.reason)
            yield Sleep(decision.wait)


def _limited_send(
    limits: Limits,
    request: Request,
    token: Token | None,
    policy: RetryPolicy,
    stats: LimitStats | None,
    clock: Callable[[], float],
) -> Generator[Action, Any, tuple[Response | TransportFailure, bool]]:
    """
    Send ``request`` when the limiter allows, and tell the limiter how it went.

    :return: the reply, and for a 401/403 whether ``token`` has served a 2xx to any request.
    """
    limiter = limits.limiter
    permit = yield from _admit(limiter, stats, clock)
    limits.budget.sent(permit.sent_at)
    if token is not None:
        limiter.token_sent(token)
    try:
        reply = yield Send(request, token)
    except BaseException:  # cancelled (GeneratorExit) or failed: the slot must come back
        limiter.release(permit, clock(), status=None)
        if token is not None:
            limiter.token_answered(token, served=False)
        raise
    now = clock()
    if isinstance(reply, TransportFailure):
        limiter.release(permit, now, status=None)
        if token is not None:
            limiter.token_answered(token, served=False)
        return reply, False
    limiter.release(permit, now, status=reply.status, headers=reply.headers)
    if token is not None:
        limiter.token_answered(token, served=200 <= reply.status < 300)
    if reply.status == 429:
        retry_after = parse_retry_after(reply.headers.get("Retry-After"), pendulum.now("UTC"))
        pause = pause_seconds(reply.headers, retry_after)
        if pause:
            limiter.pause(now, min(pause, policy.max_retry_wait))
        if stats is not None:
            stats.count(rate_limited=True)
    if stats is not None and limiter.paused_until > now:
        # Counted when it starts: the request that met it may sleep through it on its own.
        stats.paused(now, limiter.paused_until)
    served = False
    if token is not None and reply.status in (401, 403):
        # Did the token serve any request? Wait (without a slot) until the requests carrying it say.
        while (verdict := limiter.token_verdict(token)) is None:
            yield Sleep(TOKEN_VERDICT_POLL)
        served = verdict
    return reply, served


def _admit(
    limiter: Limiter, stats: LimitStats | None, clock: Callable[[], float]
) -> Generator[Action, Any, Permit]:
    """Wait (with :class:`Sleep`) until ``limiter`` lets one request go; return its permit."""
    while True:
        now = clock()
        permit = limiter.acquire(now)
        if isinstance(permit, Permit):
            if stats is not None:
                stats.sent(permit)
            return permit
        paused_until = limiter.paused_until
        if stats is not None and paused_until > now:
            stats.paused(now, paused_until)
        yield Sleep(permit)


def request_flow(
    settings: Settings,
    request: Request,
    parse: Callable[[bytes], T],
    log: Log | None = None,
    stats: LimitStats | None = None,
) -> Flow[T]:
    """:return: :func:`call_flow` for ``request`` with the retry limits and secrets of ``settings``."""
    return call_flow(request, parse, settings.retry_policy, secrets=settings.secrets, log=log, stats=stats)


def allow_missing(flow: Flow[T]) -> Flow[T | None]:
    """:return: ``flow``'s value, or ``None`` when it fails with :class:`VoiceTrackNotFoundError`."""
    try:
        return (yield from flow)
    except VoiceTrackNotFoundError:
        return None
