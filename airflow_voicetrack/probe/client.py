"""
The probe's client: searches within a request budget, on the hooks' call flow and token code.

:class:`ProbeDriver` runs the protocol's flows (:func:`~airflow_voicetrack.protocol.call_flow`,
:func:`~airflow_voicetrack.protocol.token_flow`) one request at a time over the sync driver's
transport; it counts each request against the budget and records every 429. :class:`ProbeClient`
turns a refused search into evidence (a :class:`Page` with the error) instead of an exception.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

from airflow_voicetrack.constants import DATE_END_PARAM, DATE_START_PARAM
from airflow_voicetrack.drivers.sync import new_session, send
from airflow_voicetrack.exceptions import VoiceTrackAPIError, VoiceTrackError
from airflow_voicetrack.protocol import (
    Flow,
    GetLimits,
    GetToken,
    Response,
    RetryPolicy,
    Send,
    Settings,
    Sleep,
    Token,
    TokenCache,
    TransportFailure,
    build_search_request,
    call_flow,
    format_datetime,
    token_flow,
)

T = TypeVar("T")

#: Requests the probe sends at most, token requests included.
DEFAULT_MAX_REQUESTS = 60
#: Our names of the search's date range, and the other spelling the probe tries when they are ignored.
OUR_DATE_PARAMS: tuple[str, str] = (DATE_START_PARAM, DATE_END_PARAM)
#: Retries of a 429 or 5xx during the probe, and the cap on one wait.
PROBE_RETRIES = 3
PROBE_MAX_WAIT = 30.0
#: Milliseconds in a second: the probe's dates are epoch milliseconds.
SECOND_MS = 1000


class BudgetExhausted(Exception):
    """The probe sent ``--max-requests`` requests; the remaining checks could not tell."""


@dataclass
class Page:
    """What one search returned: a page envelope, or an error."""

    status: int
    total: int = 0
    content: list[dict[str, Any]] = field(default_factory=list)
    size: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the search was answered with a page."""
        return self.status == 200


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as the API's date: ``...:SSZ`` on a whole second, else ``...:SS.mmmZ``."""
    moment = datetime.fromtimestamp(ms // SECOND_MS, tz=timezone.utc)
    if ms % SECOND_MS == 0:
        return format_datetime(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % SECOND_MS:03d}Z"


class ProbeDriver:
    """
    Runs protocol flows for the probe: one request at a time, within a budget.

    :param settings: the connection.
    :param max_requests: requests it sends at most (token requests included); then
        :class:`BudgetExhausted`.
    :param sleep: how it waits (a test may pass a faster one).
    """

    def __init__(self, settings: Settings, max_requests: int, sleep: Callable[[float], None]) -> None:
        self.settings = settings
        self.max_requests = max_requests
        self.sleep = sleep
        self.session = new_session(settings)
        self.sent = 0
        #: every 429 met: the ``Retry-After`` header, or None when it had none
        self.rate_limits: list[str | None] = []
        self.last_status: int | None = None
        self._tokens = TokenCache()

    def run(self, flow: Flow[T]) -> T:
        """Perform each action ``flow`` yields until it returns; return its value."""
        reply: Any = None
        try:
            while True:
                action = flow.send(reply)
                if isinstance(action, Send):
                    reply = self._send(action)
                elif isinstance(action, Sleep):
                    reply = self.sleep(action.seconds)
                elif isinstance(action, GetToken):
                    reply = self.token(action.rejected)
                elif isinstance(action, GetLimits):
                    reply = None  # no limiter: the budget bounds the probe, which sends one at a time
                else:  # the probe's flows fetch one page at a time
                    raise TypeError(f"the probe's driver does not run {type(action).__name__}")
        except StopIteration as done:
            return done.value

    def token(self, rejected: Token | None = None) -> Token:
        """Return the cached token unless it is missing, ``rejected`` or due; else get one."""
        token = self._tokens.usable(rejected, time.monotonic())
        if token is None:
            token = self._tokens.token = self.run(token_flow(self.settings))
        return token

    @property
    def current_token(self) -> Token | None:
        """The access token in use, if any."""
        return self._tokens.token

    def _send(self, action: Send) -> Response | TransportFailure:
        if self.sent >= self.max_requests:
            raise BudgetExhausted
        self.sent += 1
        token = None if action.token is None else action.token.value
        reply = send(self.session, action.request, token, self.settings)
        if isinstance(reply, Response):
            self.last_status = reply.status
            if reply.status == 429:
                self.rate_limits.append(reply.headers.get("Retry-After"))
        return reply


class ProbeClient:
    """
    Sends searches within a request budget and records what the API did.

    A 429, a 5xx or a failed connection is retried (at most :data:`PROBE_RETRIES` times, waiting
    ``Retry-After`` capped at ``max_wait``, else a backoff); a 401/403 gets a new token; all as the
    hooks do (the same call flow). Errors are returned, not raised: a refused search is evidence.
    No secret is ever put in a :class:`Page` or a message.
    """

    def __init__(
        self,
        settings: Settings,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        *,
        max_wait: float = PROBE_MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.max_requests = max_requests
        self.max_wait = max_wait
        self.sleep = sleep
        self.driver = ProbeDriver(settings, max_requests, sleep)
        self.policy = RetryPolicy(max_retries=PROBE_RETRIES, max_retry_wait=max_wait, max_retry_time=math.inf)

    @property
    def sent(self) -> int:
        """Requests sent so far, token requests included."""
        return self.driver.sent

    @property
    def rate_limits(self) -> list[str | None]:
        """Every 429 met: its ``Retry-After`` header, or None when it had none."""
        return self.driver.rate_limits

    def close(self) -> None:
        """Close the HTTP session."""
        self.driver.session.close()

    def redact(self, text: str) -> str:
        """:return: ``text`` with the secret, the Basic header and the access token replaced by ``***``."""
        token = self.driver.current_token
        for secret in (*self.settings.secrets, "" if token is None else token.value):
            if secret:
                text = text.replace(secret, "***")
        return text

    def token(self) -> str:
        """
        Get an access token.

        :raises VoiceTrackError: when the token endpoint refuses the credentials.
        """
        return self.driver.token().value

    def search(
        self,
        start_ms: int | None,
        end_ms: int | None,
        *,
        filters: Sequence[Mapping[str, str]] = (),
        size: int = 1,
        sort: str | None = None,
        tagged: bool | None = None,
        campaign_tracking_id: str | None = None,
        date_params: tuple[str, str] = OUR_DATE_PARAMS,
    ) -> Page:
        """
        One page (page 0) of a search, retried on 429/5xx; an error is returned as a :class:`Page`.

        :param date_params: the names the range is sent under (the hook's, unless trying another).
        """
        request = build_search_request(
            self.settings.base_url,
            date_start=None,
            date_end=None,
            filters=[dict(f) for f in filters],
            page=0,
            size=size,
            campaign_tracking_id=campaign_tracking_id,
            sort=sort,
            tagged=tagged,
        )
        # The hook sends whole seconds; the boundary check needs milliseconds.
        dates = dict(zip(date_params, (start_ms, end_ms), strict=True))
        params = {name: iso_ms(ms) for name, ms in dates.items() if ms is not None}
        request = replace(request, params={**request.params, **params})
        flow = call_flow(request, _read_page, self.policy, secrets=self.settings.secrets)
        try:
            return self.driver.run(flow)
        except VoiceTrackAPIError as error:
            text = " ".join(str(part) for part in (error.code, error.developer_message) if part)
            if error.properties:
                text += f" {error.properties}"
            return Page(error.status_code, error=f"HTTP {error.status_code} {text}".strip())
        except VoiceTrackError as error:  # retries spent on 429/5xx or on the network
            status = self.driver.last_status or 0
            return Page(status, error=self.redact(str(error)))


def _read_page(body: bytes) -> Page:
    """A 2xx body as a :class:`Page`; an unreadable one is evidence too, not a retry."""
    try:
        data = json.loads(body)
        content = list(data["content"])
        return Page(200, int(data["totalElements"]), content, data.get("size"))
    except (ValueError, KeyError, TypeError) as exc:
        return Page(200, error=f"HTTP 200 with an unreadable page ({exc})")
