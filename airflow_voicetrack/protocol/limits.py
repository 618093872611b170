"""
How fast one connection may send, in this process: adaptive concurrency, pauses, a retry budget.

:class:`Limiter` is shared by every request of a connection in a process (the sync hook's threads and
every event loop alike), so the flows ask it before each send and tell it how each send went.
:class:`RetryBudget` belongs to one hook, so one failing trigger in a triggerer cannot spend the
retries of the others. :class:`LimitStats` collects what one search saw. All free of I/O: the flows
turn a refused send into a :class:`~airflow_voicetrack.protocol.calls.Sleep`.

See ``docs/rate-limits.md`` for the behaviour, its constants and the arithmetic across processes.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_voicetrack.protocol.bodies import Token

#: The limit a new limiter starts at: one request in flight, growing by one per round of successes.
INITIAL_LIMIT = 1.0
#: The lowest rate the limit may stand for, in requests per second (the AWS SDKs' minimum fill rate):
#: below one request in flight the limit is a rate, ``limit / latency floor``. A service that wants
#: less says so in ``Retry-After``, which pauses the connection.
MIN_RATE = 0.5
#: A throttle caps the limit at this share of what the recent successes needed: those of the last
#: second when they are at least :data:`GOODPUT_SAMPLES` (they may include a burst the service
#: allowed once), else those of the last :data:`GOODPUT_WINDOW` seconds, when they are at least as
#: many. Fewer say too little about the service's rate.
GOODPUT_SHARE = 0.9
GOODPUT_SAMPLES = 5
GOODPUT_WINDOW = 5.0
#: A throttle's cut is kept only if it helped. The share of 429/503 among the first
#: :data:`CHECK_SAMPLES` responses after a cut is compared with their share among the last as many
#: before it: a service at its rate limit refuses (next to) nothing once the cut has brought the
#: sending under that limit, but 429s that do not follow this client's rate (another client's
#: traffic on the account, a fault) keep their share. Unless the share fell below
#: :data:`HELPED_SHARE` of what it was, the cut is undone, so such 429s cannot drive the limit down
#: step by step; each still pauses the connection for its ``Retry-After`` and is retried. No other
#: cut for a throttle is made until the verdict, nor after an undone cut for the next
#: ``CHECK_SAMPLES * 2 ** n`` responses, ``n`` the cuts undone in a row (up to :data:`MAX_SKIP_DOUBLINGS`):
#: the limiter tries again, ever less often, whether the service's rate is what refuses.
CHECK_SAMPLES = 20
HELPED_SHARE = 0.5
MAX_SKIP_DOUBLINGS = 5
#: A 429 or 503 multiplies the limit by this (AWS's CUBIC uses 0.7) ...
THROTTLE_BACKOFF = 0.7
#: ... and a latency far above its floor by this (a gentler signal than a refusal).
LATENCY_BACKOFF = 0.9
#: Latency counts as "well above its floor" past both ``LATENCY_FACTOR * floor`` and
#: ``floor + LATENCY_SLACK`` seconds: the slack keeps a few milliseconds of jitter on a fast
#: server from reading as congestion.
LATENCY_FACTOR = 2.0
LATENCY_SLACK = 0.1
#: Latencies kept for the floor (the smallest of them).
LATENCY_SAMPLES = 200
#: After a throttle the limit grows by this share per second (time-based, since a server's rate
#: window answers in seconds, not in round trips), for :data:`RECOVERY_SECONDS`; then again by one
#: request per round of successes.
RECOVERY_GROWTH = 0.05
RECOVERY_SECONDS = 60.0
#: How long a refused send waits before asking again when it waits for a free slot, at most.
MAX_POLL = 0.05
#: Retry budget (after the AWS SDKs' retry quota): beyond each call's first retry, retries in the
#: last :data:`BUDGET_WINDOW` seconds may number ``BUDGET_RATIO`` of the requests sent in it, plus
#: :data:`BUDGET_MIN`.
BUDGET_WINDOW = 60.0
BUDGET_RATIO = 0.2
BUDGET_MIN = 5
#: Statuses that say "slow down".
THROTTLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Permit:
    """Leave to send one request, from :meth:`Limiter.acquire`; hand it back to :meth:`Limiter.release`."""

    sent_at: float
    limit: float
    #: whether the limit held this send back (so success says the limit may grow)
    binding: bool


class Limiter:
    """
    The sending limit of one connection in one process (thread-safe, event-loop agnostic).

    - **Adaptive concurrency (AIMD).** ``limit`` moves up to ``max_concurrency`` (and down to a
      rate of :data:`MIN_RATE`): up by one request per round of successes (``1 / limit`` per success
      that the limit held back), down by :data:`THROTTLE_BACKOFF` on a 429 or 503 (and to no more
      than 0.9 of what the requests that succeeded in the last second needed), down by
      :data:`LATENCY_BACKOFF` when a response takes well above the latency floor. At most one
      decrease per round: a response to a request sent before the last decrease does not decrease
      again, nor one when nothing succeeded since the last (an outage says nothing about the
      service's rate). At most ``ceil(limit)`` requests are in flight, and sends are paced at
      ``limit / latency floor`` per second, so a limit of 1.4 means 1.4 requests in flight on
      average, and a limit below 1 is a rate. After a throttle, and while below 1, the limit grows
      by :data:`RECOVERY_GROWTH` a second instead: a rate limit's window answers in seconds. A
      throttle's cut that did not lower the share of throttles is undone (:data:`CHECK_SAMPLES`).
    - **Pauses.** A 429's ``Retry-After`` (or ``RateLimit-Reset``) pauses every send of the
      connection until then; so does ``RateLimit-Remaining`` (or ``X-RateLimit-*``) no larger than
      the requests the limit may keep in flight, until its ``RateLimit-Reset``.
    - **A fixed rate.** ``max_requests_per_second`` spaces sends evenly, whatever the limit.
    - **Tokens.** Which access tokens have served a 2xx (see
      :meth:`~airflow_voicetrack.protocol.calls.Call.on_response`).

    :param max_concurrency: the ceiling of the limit.
    :param max_requests_per_second: a fixed rate, or ``None``.
    """

    _registry: ClassVar[dict[tuple[str, ...], Limiter]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, max_concurrency: int, max_requests_per_second: float | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.max_requests_per_second = max_requests_per_second
        self.limit = min(INITIAL_LIMIT, float(max_concurrency))
        self.in_flight = 0
        self.paused_until = 0.0
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._floor = 0.0
        self._next_send = 0.0
        self._last_decrease = -math.inf
        self._throttled_at = -math.inf
        self._last_growth = 0.0
        self._successes: deque[float] = deque()
        #: whether a send was held back since the last permit
        self._held = False
        self._succeeded_since_decrease = True
        #: whether each of the last responses was a throttle (newest last)
        self._outcomes: deque[bool] = deque(maxlen=CHECK_SAMPLES)
        #: the last throttle cut awaiting its verdict: the share of throttles before it, the limit it
        #: cut and when; and the responses and throttles to requests sent since
        self._cut: tuple[float, float, float] | None = None
        self._since_cut = [0, 0]
        #: throttle cuts undone because they did not help, in all and in a row; responses to let pass
        #: before the next throttle cut
        self.cuts_undone = 0
        self._undone_in_a_row = 0
        self._skip = 0
        self._served: weakref.WeakSet[Token] = weakref.WeakSet()
        #: requests in flight per token
        self._carrying: Counter[Token] = Counter()

    @classmethod
    def of(cls, key: tuple[str, ...], max_concurrency: int, max_requests_per_second: float | None) -> Limiter:
        """
        :return: the process's limiter of the connection ``key``, made on first use.

        Hooks of one connection may ask for different ceilings (an operator caps its own by
        ``pool_slots``): the limiter takes the largest, each search still keeps its own cap; and
        the lowest fixed rate set.
        """
        with cls._registry_lock:
            limiter = cls._registry.get(key)
            if limiter is None:
                limiter = cls._registry[key] = cls(max_concurrency, max_requests_per_second)
            with limiter._lock:
                limiter.max_concurrency = max(limiter.max_concurrency, max_concurrency)
                if max_requests_per_second is not None:
                    rates = (limiter.max_requests_per_second or math.inf, max_requests_per_second)
                    limiter.max_requests_per_second = min(rates)
            return limiter

    def acquire(self, now: float) -> Permit | float:
        """
        Take leave to send now, or learn how long to wait before asking again.

        :param now: monotonic time.
        :return: a :class:`Permit`, or the seconds to wait.
        """
        with self._lock:
            if now < self.paused_until:
                return self.paused_until - now
            if self.in_flight >= max(1, math.ceil(self.limit)):
                self._held = True
                return min(MAX_POLL, max(0.001, self._floor / 4))
            if now < self._next_send:
                self._held = True
                return self._next_send - now
            binding = self._held or self.in_flight + 1 >= math.ceil(self.limit)
            self._held = False
            interval = self._floor / self.limit if self._floor else 0.0
            if self.max_requests_per_second:
                interval = max(interval, 1 / self.max_requests_per_second)
            self._next_send = max(self._next_send, now) + interval if interval else 0.0
            self.in_flight += 1
            return Permit(now, self.limit, binding)

    def release(
        self, permit: Permit, now: float, *, status: int | None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        Hand back a permit and learn from how its request went.

        :param status: the response's status, ``None`` when none came (a transport error: neither
            a success nor a throttle).
        :param headers: the response's headers, for ``RateLimit-*`` / ``X-RateLimit-*``.
        """
        with self._lock:
            self.in_flight -= 1
            remaining = None if headers is None else _rate_header(headers, "Remaining")
            if remaining is not None and remaining <= max(self.in_flight, math.ceil(self.limit)):
                # What remains may go to the requests on their way, or about to be: none may follow.
                self._pause_locked(now, _rate_header(headers or {}, "Reset") or 0.0)
            if status is None:
                return
            throttled = status in THROTTLE_STATUSES
            self._outcomes.append(throttled)
            judged = self._judge_cut(throttled, permit.sent_at)
            self._skip = max(0, self._skip - 1)
            if throttled:
                # Once per round, and only when something succeeded since the last cut: during an
                # outage nothing says what the service can take, and the retries back off anyway.
                may_cut = not (self._cut or self._skip or judged)
                if permit.sent_at >= self._last_decrease and self._succeeded_since_decrease and may_cut:
                    self._cut = (sum(self._outcomes) / len(self._outcomes), self.limit, now)
                    limit = self.limit * THROTTLE_BACKOFF
                    goodput = self._goodput(now)
                    if goodput and self._floor:
                        limit = min(limit, GOODPUT_SHARE * goodput * self._floor)
                    self._decrease(now, limit)
                    self._throttled_at = now
                    self._succeeded_since_decrease = False
                return
            latency = now - permit.sent_at
            self._latencies.append(latency)
            self._floor = min(self._latencies)
            self._successes.append(now)
            while self._successes[0] <= now - GOODPUT_WINDOW:
                self._successes.popleft()
            self._succeeded_since_decrease = True
            slow = latency > max(LATENCY_FACTOR * self._floor, self._floor + LATENCY_SLACK)
            if slow and permit.sent_at >= self._last_decrease:
                self._decrease(now, self.limit * LATENCY_BACKOFF)
            elif not slow and permit.binding:
                self._grow(now)

    def paused_for(self, now: float) -> float:
        """:return: the seconds every send of the connection must still wait (0: not paused)."""
        return max(0.0, self.paused_until - now)

    def pause(self, now: float, seconds: float) -> None:
        """Hold every send of the connection for ``seconds`` (a 429's ``Retry-After``)."""
        with self._lock:
            self._pause_locked(now, seconds)

    def token_sent(self, token: Token) -> None:
        """Note that a request went out with ``token``."""
        with self._lock:
            self._carrying[token] += 1

    def token_answered(self, token: Token, *, served: bool) -> None:
        """Note that a request with ``token`` came back, with a 2xx when ``served``."""
        with self._lock:
            self._carrying[token] -= 1
            if self._carrying[token] <= 0:
                del self._carrying[token]
            if served:
                self._served.add(token)

    def token_verdict(self, token: Token) -> bool | None:
        """
        Say whether ``token`` has served a 2xx, once that is known.

        :return: ``True`` when it has (a rejection of it is an expiry or a revocation), ``False``
            when it has not and no request carrying it is still in flight, ``None`` while one is:
            a small rejection can overtake the large pages that the same token is serving.
        """
        with self._lock:
            if token in self._served:
                return True
            return None if self._carrying[token] > 0 else False

    def _pause_locked(self, now: float, seconds: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)

    def _goodput(self, now: float) -> float | None:
        """:return: the successes per second of late, or ``None`` when too few say it."""
        while self._successes and self._successes[0] <= now - GOODPUT_WINDOW:
            self._successes.popleft()
        last_second = sum(1 for t in self._successes if t > now - 1.0)
        if last_second >= GOODPUT_SAMPLES:
            return float(last_second)
        if len(self._successes) >= GOODPUT_SAMPLES:
            return len(self._successes) / max(1.0, now - self._successes[0])
        return None

    def _judge_cut(self, throttled: bool, sent_at: float) -> bool:
        """
        Count a response to a request sent after a throttle's cut, and judge the cut.

        Requests sent before the cut went out at the old pace: they do not count. Once
        :data:`CHECK_SAMPLES` responses have, the cut is kept or undone.

        :return: whether this response gave the verdict.
        """
        if self._cut is None or sent_at < self._cut[2]:
            return False
        self._since_cut[0] += 1
        self._since_cut[1] += throttled
        responses, throttles = self._since_cut
        if responses < CHECK_SAMPLES:
            return False
        share_before, limit_before, _ = self._cut
        self._cut = None
        self._since_cut = [0, 0]
        if throttles and throttles / responses >= HELPED_SHARE * share_before:
            self.limit = max(self.limit, min(float(self.max_concurrency), limit_before))
            self.cuts_undone += 1
            self._skip = CHECK_SAMPLES * 2 ** min(self._undone_in_a_row, MAX_SKIP_DOUBLINGS)
            self._undone_in_a_row += 1
        else:
            self._undone_in_a_row = 0
        return True

    def _decrease(self, now: float, limit: float) -> None:
        # Below one request in flight the limit is a rate of the latency floor: none without one.
        self.limit = max(MIN_RATE * self._floor if self._floor else 1.0, limit)
        self._last_decrease = now
        self._last_growth = now

    def _grow(self, now: float) -> None:
        if now - self._throttled_at < RECOVERY_SECONDS or self.limit < 1:
            elapsed = min(1.0, max(0.0, now - self._last_growth))
            self.limit *= 1 + RECOVERY_GROWTH * elapsed
        else:
            self.limit += 1 / self.limit
        self.limit = min(float(self.max_concurrency), self.limit)
        self._last_growth = now


def _rate_header(headers: Mapping[str, str], field: str) -> float | None:
    """:return: ``RateLimit-<field>`` or ``X-RateLimit-<field>`` as a number, or ``None``."""
    for name in (f"RateLimit-{field}", f"X-RateLimit-{field}"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value.split(",")[0].split(";")[0])
        except ValueError:
            return None
        return number if math.isfinite(number) and number >= 0 else None
    return None


def pause_seconds(headers: Mapping[str, str], retry_after: float | None) -> float | None:
    """
    Say how long a 429 pauses the connection.

    :return: its ``Retry-After`` (already read), else its ``RateLimit-Reset`` /
        ``X-RateLimit-Reset``; ``None`` when it says neither.
    """
    return retry_after if retry_after is not None else _rate_header(headers, "Reset")


class RetryBudget:
    """
    The retries one hook may make: a share of its recent requests, after the AWS SDKs' retry quota.

    Each call's first retry is always allowed, and not counted (a quiet sensor's one retry is never
    refused); beyond it, the retries of the last :data:`BUDGET_WINDOW` seconds may number
    :data:`BUDGET_RATIO` of the requests sent in them, plus :data:`BUDGET_MIN`. So when the
    service fails, an operation fails fast instead of multiplying the load. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def sent(self, now: float) -> None:
        """Count one request sent."""
        with self._lock:
            self._requests.append(now)

    def spend(self, retry_number: int, now: float) -> bool:
        """
        Take one retry from the budget.

        :param retry_number: 1 for a call's first retry.
        :return: whether the retry may be made (when not, nothing is spent).
        """
        with self._lock:
            for times in (self._requests, self._retries):
                while times and times[0] <= now - BUDGET_WINDOW:
                    times.popleft()
            if retry_number == 1:
                return True  # the floor: free, and not counted against the others
            if len(self._retries) >= BUDGET_RATIO * len(self._requests) + BUDGET_MIN:
                return False
            self._retries.append(now)
            return True

    def describe(self, now: float) -> str:
        """:return: the budget's state, for an error message."""
        with self._lock:
            return (
                f"{len(self._retries)} retries beyond each request's first for {len(self._requests)} "
                f"requests in the last {BUDGET_WINDOW:g} s (allowed: {BUDGET_RATIO:.0%} of the requests "
                f"+ {BUDGET_MIN})"
            )


@dataclass(frozen=True)
class Limits:
    """What a driver hands the flows: the connection's limiter and the hook's retry budget."""

    limiter: Limiter
    budget: RetryBudget


class LimitStats:
    """What one search (or one operation) saw of the limits; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: list[float] = []
        self.rate_limited = 0
        self.retries = 0
        self.paused_seconds = 0.0
        self._paused_until = 0.0

    def sent(self, permit: Permit) -> None:
        """Count a send and the limit it went out under."""
        with self._lock:
            self._limits.append(permit.limit)

    def count(self, *, rate_limited: bool = False, retry: bool = False) -> None:
        """Count a 429 met, or a retry spent."""
        with self._lock:
            self.rate_limited += rate_limited
            self.retries += retry

    def paused(self, now: float, until: float) -> None:
        """Count the time until ``until`` as paused, once however many requests wait through it."""
        with self._lock:
            if until > self._paused_until:
                self.paused_seconds += until - max(now, self._paused_until)
                self._paused_until = until

    def as_dict(self) -> dict[str, Any]:
        """:return: effective concurrency (the limit at each send) min/mean/max, pauses, 429s, retries."""
        with self._lock:
            limits = self._limits or [0.0]
            return {
                "concurrency_min": round(min(limits), 2),
                "concurrency_mean": round(sum(limits) / len(limits), 2),
                "concurrency_max": round(max(limits), 2),
                "paused_seconds": round(self.paused_seconds, 3),
                "responses_429": self.rate_limited,
                "retries": self.retries,
            }


def connection_key(conn_id: str, base_url: str, client_id: str) -> tuple[str, ...]:
    """:return: what identifies a connection's limiter in a process."""
    return (conn_id, base_url, client_id)
