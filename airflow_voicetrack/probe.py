r"""
Check this provider's assumptions about Routee's voice tracking API against the real service.

Where Routee's documentation is silent this provider made decisions (see the documentation's
"Limits and API assumptions", ``docs/reference/limits.md``), and the emulator encodes the same
decisions, so the test suite cannot catch a wrong one. The probe asks the real service, with
read-only searches only (``POST /voice/tracking``, plus one token request), a bounded number of
them (``--max-requests``, default :data:`DEFAULT_MAX_REQUESTS`), and prints one row per
assumption: what it assumes, how it was tested, the result (``holds``, ``does not hold`` or
``could not tell``) and the evidence::

    python -m airflow_voicetrack.probe --conn-id voicetrack_default
    VOICETRACK_APP_SECRET=... python -m airflow_voicetrack.probe \\
        --host https://connect.routee.net --auth-url https://auth.routee.net/oauth/token --app-id ID

The second form reads no Airflow connection (the secret comes from an environment variable, never
from the command line). The exit status is 0 when nothing was found not to hold, 1 when something
does not hold, 2 when the probe could not run (bad arguments, credentials refused).

How each assumption is tested (all dates UTC; "now" is the start of the run, to the second):

* **range limits**: searches ``[now - N days, now)`` for N in :data:`RANGE_LADDER_DAYS`, one message
  each, until one is refused; the counts tell whether messages older than 7 days come back.
* **date filter honoured**: a one-day window :data:`PAST_WINDOW_DAYS` days ago must be empty while
  the widest range with messages is not, and the narrowest range must hold fewer messages than the
  widest. A service that does not know the parameters' names ignores them, with no error, and
  returns the whole history to every search: the provider would then write it into every object.
* **parameter names**: only when the date filter is not honoured (or our names are refused), the
  same two searches with the other spelling (:data:`~airflow_voicetrack.constants.OTHER_DATE_PARAMS`)
  tell which names the service honours.
* **campaign filter honoured**: a random campaign tracking id (``trackingId``) must match nothing.
* **page size**: a page of 2000, then of 2001, over the longest accepted range.
* **sort**: ``messageId,asc`` and ``messageId,desc`` (``status.date`` if ``messageId`` is refused).
* **end boundary**: a message's creation time is not in the payload, so it is found by
  bisection of ``from`` with an ``id`` filter (the largest start that still finds the message,
  to the second, then to the millisecond), then the range ending exactly at it, and 1 ms after.
* **two filters**: ``id is A`` with ``id is B`` (AND: nothing, OR: both), and ``id is A`` with
  ``status.status is_not <A's status>``.
* **tagged**: ``tagged=true`` and ``tagged=false`` must split the range, with and without campaign.
* **Unknown**: messages in ``Unknown`` are re-read after ``--unknown-wait`` seconds.
* **429**: every 429 met during the run, and its ``Retry-After``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import requests

from airflow_voicetrack import transport
from airflow_voicetrack.constants import (
    CAMPAIGN_TRACKING_ID_PARAM,
    DATE_END_PARAM,
    DATE_START_PARAM,
    MAX_PAGE_SIZE,
    OTHER_DATE_PARAMS,
)
from airflow_voicetrack.exceptions import VoiceTrackError, VoiceTrackTransientError
from airflow_voicetrack.protocol import (
    RETRYABLE_STATUSES,
    Request,
    Response,
    Settings,
    TransportFailure,
    build_search_request,
    build_token_request,
    error_from_response,
    format_datetime,
    parse_retry_after,
    parse_token,
)

#: Requests the probe sends at most, token requests included.
DEFAULT_MAX_REQUESTS = 60
#: Seconds between the two reads of messages in ``Unknown``.
DEFAULT_UNKNOWN_WAIT = 120.0
#: Range lengths tried, in days, until one is refused.
RANGE_LADDER_DAYS: tuple[int, ...] = (1, 7, 31, 92, 366, 1096)
#: The SMS twin's documented limit: only the latest 7 days can be searched.
SMS_TWIN_DAYS = 7
#: How many ``Unknown`` messages are re-read, one search each.
UNKNOWN_REREADS = 3
#: How many days ago the window that must be empty starts (a one-day window, ten years back).
PAST_WINDOW_DAYS = 3653
#: Our names of the search's date range, and the other spelling the probe tries when they are ignored.
OUR_DATE_PARAMS: tuple[str, str] = (DATE_START_PARAM, DATE_END_PARAM)
#: Retries of a 429 or 5xx during the probe, and the cap on one wait.
PROBE_RETRIES = 3
PROBE_MAX_WAIT = 30.0

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "could not tell"
_SECOND_MS = 1000
_DAY_MS = 86_400_000


class BudgetExhausted(Exception):
    """The probe sent ``--max-requests`` requests; the remaining checks could not tell."""


@dataclass(frozen=True)
class Finding:
    """One row of the probe's table."""

    assumption: str
    how: str
    result: str
    evidence: str


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
    moment = datetime.fromtimestamp(ms // _SECOND_MS, tz=timezone.utc)
    if ms % _SECOND_MS == 0:
        return format_datetime(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % _SECOND_MS:03d}Z"


class ProbeClient:
    """
    Sends searches within a request budget and records what the API did.

    A 429 or 5xx is retried (at most :data:`PROBE_RETRIES` times, waiting ``Retry-After`` capped at
    ``max_wait``, else 1 s); a 401/403 gets one new token. Errors are returned, not raised: a refused
    search is evidence. No secret is ever put in a :class:`Page` or a message.
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
        self.sent = 0
        #: every 429 met: the ``Retry-After`` header, or None when it had none
        self.rate_limits: list[str | None] = []
        self._session = transport.new_session(settings)
        self._token: str | None = None

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def _send(self, request: Request, token: str | None) -> Response:
        if self.sent >= self.max_requests:
            raise BudgetExhausted
        self.sent += 1
        reply = transport.send(self._session, request, token, self.settings)
        if isinstance(reply, TransportFailure):
            raise VoiceTrackTransientError(f"{request.label}: no response ({reply.kind}: {reply.detail})")
        return reply

    def redact(self, text: str) -> str:
        """:return: ``text`` with the secret, the Basic header and the access token replaced by ``***``."""
        for secret in (*self.settings.secrets, self._token or ""):
            if secret:
                text = text.replace(secret, "***")
        return text

    def token(self) -> str:
        """Get an access token (one request).

        :raises VoiceTrackError: when the token endpoint refuses the credentials.
        """
        request = build_token_request(self.settings)
        response = self._send(request, None)
        if response.status != 200:
            raise error_from_response(response, request.label, self.redact)
        self._token = parse_token(response.body, time.monotonic()).value
        return self._token

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
        refreshed = False
        retries = 0
        while True:
            token = self._token or self.token()
            response = self._send(request, token)
            if response.status in (401, 403) and not refreshed:
                refreshed = True
                self._token = None
                continue
            if response.status == 429:
                self.rate_limits.append(response.headers.get("Retry-After"))
            if response.status in RETRYABLE_STATUSES and retries < PROBE_RETRIES:
                retries += 1
                wait = parse_retry_after(response.headers.get("Retry-After"), datetime.now(timezone.utc))
                self.sleep(min(self.max_wait, 1.0 if wait is None else wait))
                continue
            return self._page(response, request)

    def _page(self, response: Response, request: Request) -> Page:
        if response.status != 200:
            error = error_from_response(response, request.label, self.redact)
            text = " ".join(str(part) for part in (error.code, error.developer_message) if part)
            if error.properties:
                text += f" {error.properties}"
            return Page(response.status, error=f"HTTP {response.status} {text}".strip())
        try:
            data = json.loads(response.body)
            content = list(data["content"])
            return Page(200, int(data["totalElements"]), content, data.get("size"))
        except (ValueError, KeyError, TypeError) as exc:
            return Page(response.status, error=f"HTTP 200 with an unreadable page ({exc})")


@dataclass
class Context:
    """What the checks learn from each other."""

    now_ms: int
    #: days -> the page of ``[now - days, now)`` (refused ones included)
    ladder: dict[int, Page] = field(default_factory=dict)
    #: the longest accepted range with messages: (days, page)
    data_range: tuple[int, Page] | None = None
    #: a few messages of the data range
    sample: list[dict[str, Any]] = field(default_factory=list)
    #: the date range was found not applied: checks that rely on it cannot tell
    dates_ignored: bool = False

    def range_start(self) -> int:
        """Return the start of the data range, in epoch milliseconds."""
        assert self.data_range is not None
        return self.now_ms - self.data_range[0] * _DAY_MS


def _count(page: Page) -> str:
    return f"{page.total} messages" if page.ok else page.error


# ------------------------------------------------------------------------------------------------
# The checks. Each returns its findings; BudgetExhausted is turned into "could not tell" by run().


def check_range_limits(client: ProbeClient, ctx: Context) -> list[Finding]:
    """Ranges of growing length ending now: which are accepted, and how far back data comes."""
    for days in RANGE_LADDER_DAYS:
        page = client.search(ctx.now_ms - days * _DAY_MS, ctx.now_ms, size=1)
        ctx.ladder[days] = page
        if not page.ok:
            break
        if page.total:
            ctx.data_range = (days, page)
    accepted = [d for d, p in ctx.ladder.items() if p.ok]
    refused = [d for d, p in ctx.ladder.items() if not p.ok]
    counts = "; ".join(f"{d} d: {_count(p)}" for d, p in ctx.ladder.items())
    how = f"searched [now - N days, now) for N = {', '.join(map(str, RANGE_LADDER_DAYS))} until refused"
    findings = []
    first = ctx.ladder[RANGE_LADDER_DAYS[0]]
    findings.append(
        Finding(
            "Dates are sent in UTC with Z, to the second",
            f"every search; the first: {DATE_START_PARAM}={iso_ms(ctx.now_ms - _DAY_MS)}",
            HOLDS if accepted else UNCLEAR,
            "accepted" if accepted else f"every search refused: {first.error}",
        )
    )
    if not accepted:
        result, evidence = FAILS, f"even 1 day was refused: {first.error}"
    elif refused:
        result = HOLDS
        evidence = (
            f"largest accepted: {accepted[-1]} days; {refused[0]} days refused "
            f"({ctx.ladder[refused[0]].error}). The hook searches in windows of window_hours (24 h), "
            "so a limit of a day or more is harmless"
        )
    else:
        result, evidence = HOLDS, f"every range accepted, up to {accepted[-1]} days"
    findings.append(Finding("One search accepts a range of a day or more", how, result, evidence))

    findings.append(check_reach(client, ctx, counts, accepted))
    return findings


def check_reach(client: ProbeClient, ctx: Context, counts: str, accepted: list[int]) -> Finding:
    """Whether messages older than 7 days come back: a count that grows past 7 days says so."""
    assumption = f"Searches reach back further than {SMS_TWIN_DAYS} days (the SMS twin's limit)"
    how = f"the same searches: do ranges longer than {SMS_TWIN_DAYS} days find more messages?"
    week = ctx.ladder.get(SMS_TWIN_DAYS)
    if week is None or not week.ok:
        return Finding(assumption, how, UNCLEAR, counts)
    if any(d > SMS_TWIN_DAYS for d in accepted):
        if any(ctx.ladder[d].total > week.total for d in accepted if d > SMS_TWIN_DAYS):
            return Finding(assumption, how, HOLDS, f"{counts}: older messages come back")
        return Finding(
            assumption,
            how,
            UNCLEAR,
            f"{counts}: no message older than {SMS_TWIN_DAYS} days (none sent then, or not searchable)",
        )
    # Ranges longer than 7 days are refused: try a 7-day window that starts 14 days ago.
    how = f"[now - {2 * SMS_TWIN_DAYS} days, now - {SMS_TWIN_DAYS} days), as longer ranges are refused"
    end = ctx.now_ms - SMS_TWIN_DAYS * _DAY_MS
    old = client.search(end - SMS_TWIN_DAYS * _DAY_MS, end)
    if not old.ok:
        return Finding(assumption, how, FAILS, f"{counts}; that window: {old.error}")
    evidence = f"{counts}; that window: {old.total} messages"
    return Finding(assumption, how, HOLDS if old.total else UNCLEAR, evidence)


DATE_FILTER = "The date filter is honoured"
PARAMETER_NAMES = f"The date range's parameters are named {DATE_START_PARAM}, {DATE_END_PARAM}"
CAMPAIGN_FILTER = "The campaign filter is honoured"
HALF_OPEN = f"The range is half-open: [{DATE_START_PARAM}, {DATE_END_PARAM})"


@dataclass(frozen=True)
class _DateTest:
    """The two searches that tell whether a spelling of the date range is honoured."""

    past: Page
    narrow: Page
    wide: Page
    narrow_days: int

    @property
    def refused(self) -> bool:
        return not (self.past.ok and self.narrow.ok)

    @property
    def honoured(self) -> bool:
        """A window years back is empty (or refused: the dates are read) and a narrow range holds fewer."""
        past_empty = not self.past.ok or self.past.total == 0
        return self.narrow.ok and past_empty and self.narrow.total < self.wide.total

    def evidence(self, names: tuple[str, str]) -> str:
        return (
            f"with {names[0]}/{names[1]}: {PAST_WINDOW_DAYS} days ago: {_count(self.past)}; "
            f"last {self.narrow_days} d: {_count(self.narrow)}; widest: {_count(self.wide)}"
        )


def _date_test(client: ProbeClient, ctx: Context, wide: Page, names: tuple[str, str]) -> _DateTest:
    """Search a one-day window years back, and the narrowest ladder range, with ``names``."""
    past_end = ctx.now_ms - (PAST_WINDOW_DAYS - 1) * _DAY_MS
    past = client.search(past_end - _DAY_MS, past_end, date_params=names)
    days = RANGE_LADDER_DAYS[0]
    narrow = ctx.ladder.get(days) if names == OUR_DATE_PARAMS else None
    if narrow is None:
        narrow = client.search(ctx.now_ms - days * _DAY_MS, ctx.now_ms, date_params=names)
    return _DateTest(past, narrow, wide, days)


def check_date_filter(client: ProbeClient, ctx: Context) -> list[Finding]:
    """
    Check that the date range is applied; if it is not, which spelling the service reads.

    Applied: a window years back is empty while the widest range is not, and the narrowest range
    holds fewer messages than the widest.
    """
    how = (
        f"[now - {PAST_WINDOW_DAYS} d, +1 d) must be empty and [now - {RANGE_LADDER_DAYS[0]} d, now) must "
        "hold fewer messages than the widest range with messages"
    )
    names_how = (
        f"only when {DATE_START_PARAM}/{DATE_END_PARAM} are not honoured: the same searches with "
        + "/".join(OTHER_DATE_PARAMS)
    )
    wide = ctx.data_range[1] if ctx.data_range is not None else None
    if wide is None and any(page.ok for page in ctx.ladder.values()):
        evidence = "no messages found in any range"
        return [
            Finding(DATE_FILTER, how, UNCLEAR, evidence),
            Finding(PARAMETER_NAMES, names_how, UNCLEAR, evidence),
        ]
    if wide is None:  # every search with our names refused: do the other names work?
        refused = ctx.ladder[RANGE_LADDER_DAYS[0]]
        wide = client.search(
            ctx.now_ms - RANGE_LADDER_DAYS[-1] * _DAY_MS, ctx.now_ms, date_params=OTHER_DATE_PARAMS
        )
        if not wide.ok or not wide.total:
            evidence = (
                f"our names refused ({refused.error}); with {'/'.join(OTHER_DATE_PARAMS)}: {_count(wide)}"
            )
            return [
                Finding(DATE_FILTER, how, UNCLEAR, f"every search refused: {refused.error}"),
                Finding(PARAMETER_NAMES, names_how, UNCLEAR, evidence),
            ]
        other = _date_test(client, ctx, wide, OTHER_DATE_PARAMS)
        return [
            Finding(DATE_FILTER, how, UNCLEAR, f"every search refused: {refused.error}"),
            _names_finding(names_how, f"our names refused ({refused.error})", other),
        ]
    ours = _date_test(client, ctx, wide, OUR_DATE_PARAMS)
    evidence = ours.evidence(OUR_DATE_PARAMS)
    if ours.honoured:
        return [
            Finding(DATE_FILTER, how, HOLDS, evidence),
            Finding(PARAMETER_NAMES, names_how, HOLDS, f"{DATE_START_PARAM}/{DATE_END_PARAM} are honoured"),
        ]
    if ours.refused:
        return [
            Finding(DATE_FILTER, how, UNCLEAR, evidence),
            Finding(PARAMETER_NAMES, names_how, UNCLEAR, "a search of the date test was refused"),
        ]
    evidence += (
        ": the date range is not applied, so every search returns the account's whole history (the "
        "provider's date check fails such a search)"
    )
    ctx.dates_ignored = True
    other = _date_test(client, ctx, wide, OTHER_DATE_PARAMS)
    return [
        Finding(DATE_FILTER, how, FAILS, evidence),
        _names_finding(names_how, f"{DATE_START_PARAM}/{DATE_END_PARAM} are ignored", other),
    ]


def _names_finding(how: str, ours: str, other: _DateTest) -> Finding:
    """Return the parameter names row once ours failed: does the other spelling work."""
    evidence = f"{ours}; {other.evidence(OTHER_DATE_PARAMS)}"
    if other.honoured:
        names = "/".join(OTHER_DATE_PARAMS)
        evidence += f": the service honours {names}, the provider sends {DATE_START_PARAM}/{DATE_END_PARAM}"
    else:
        evidence += ": neither spelling is honoured"
    return Finding(PARAMETER_NAMES, how, FAILS, evidence)


def check_campaign_filter(client: ProbeClient, ctx: Context) -> list[Finding]:
    """A random campaign tracking id matches nothing."""
    tracking_id = str(uuid.uuid4())
    how = f"{CAMPAIGN_TRACKING_ID_PARAM}=<a random id> over the widest range with messages must match nothing"
    if ctx.data_range is None:
        return [Finding(CAMPAIGN_FILTER, how, UNCLEAR, "no messages found in any range")]
    days, wide = ctx.data_range
    page = client.search(ctx.now_ms - days * _DAY_MS, ctx.now_ms, campaign_tracking_id=tracking_id)
    evidence = (
        f"{CAMPAIGN_TRACKING_ID_PARAM}={tracking_id}: {_count(page)}; without it: {wide.total} messages"
    )
    if not page.ok:
        return [Finding(CAMPAIGN_FILTER, how, UNCLEAR, evidence)]
    if page.total:
        evidence += f": the campaign filter is not applied ({CAMPAIGN_TRACKING_ID_PARAM} ignored)"
        return [Finding(CAMPAIGN_FILTER, how, FAILS, evidence)]
    return [Finding(CAMPAIGN_FILTER, how, HOLDS, evidence)]


def check_page_size(client: ProbeClient, ctx: Context) -> list[Finding]:
    """A page of 2000, then 2001, over the longest accepted range that has messages."""
    assumption = f"Pages hold up to {MAX_PAGE_SIZE} messages; a larger size is refused"
    how = f"size={MAX_PAGE_SIZE}, then size={MAX_PAGE_SIZE + 1}, over the longest accepted range"
    if ctx.data_range is None:
        return [Finding(assumption, how, UNCLEAR, "no messages found in any range")]
    start, total = ctx.range_start(), ctx.data_range[1].total
    full = client.search(start, ctx.now_ms, size=MAX_PAGE_SIZE)
    ctx.sample = full.content[:50] if full.ok else ctx.sample
    if not full.ok:
        sizes = (1000, 500, 100, 20)
        largest = None
        for smaller in sizes:
            page = client.search(start, ctx.now_ms, size=smaller)
            if page.ok:
                largest, ctx.sample = smaller, page.content[:50]
                break
        return [
            Finding(
                assumption,
                how,
                FAILS,
                f"size={MAX_PAGE_SIZE} refused ({full.error}); largest accepted of {sizes}: {largest}",
            )
        ]
    expected = min(total, MAX_PAGE_SIZE)
    if len(full.content) != expected or full.size not in (None, MAX_PAGE_SIZE):
        return [
            Finding(
                assumption,
                how,
                FAILS,
                f"size={MAX_PAGE_SIZE} gave {len(full.content)} messages (size {full.size}) of {total}; "
                f"expected {expected}: pages are capped lower",
            )
        ]
    above = client.search(start, ctx.now_ms, size=MAX_PAGE_SIZE + 1)
    got = f"size={MAX_PAGE_SIZE}: {len(full.content)} of {total} messages"
    if not above.ok:
        return [Finding(assumption, how, HOLDS, f"{got}; size={MAX_PAGE_SIZE + 1}: {above.error}")]
    if total <= MAX_PAGE_SIZE:
        note = f"accepted, {len(above.content)} messages (only {total} in the range)"
    else:
        note = f"accepted, {len(above.content)} messages"
    return [
        Finding(
            assumption, how, FAILS, f"{got}; size={MAX_PAGE_SIZE + 1}: {note}: the limit is higher or absent"
        )
    ]


def check_sort(client: ProbeClient, ctx: Context) -> list[Finding]:
    """``field,asc`` and ``field,desc`` order a page as they say."""
    assumption = "Sort syntax is field,asc / field,desc"
    if ctx.data_range is None:
        return [Finding(assumption, "-", UNCLEAR, "no messages found in any range")]
    start = ctx.range_start()
    size = min(ctx.data_range[1].total, 50)
    refusals = []
    for name, key in (("messageId", lambda m: m.get("messageId") or ""), ("status.date", _status_date)):
        how = f"sort={name},asc and sort={name},desc, {size} messages"
        ascending = client.search(start, ctx.now_ms, size=size, sort=f"{name},asc")
        if not ascending.ok:
            refusals.append(f"{name},asc: {ascending.error}")
            continue
        descending = client.search(start, ctx.now_ms, size=size, sort=f"{name},desc")
        if not descending.ok:
            return [
                Finding(assumption, how, FAILS, f"{name},asc accepted but {name},desc: {descending.error}")
            ]
        up = [key(m) for m in ascending.content]
        down = [key(m) for m in descending.content]
        ordered = up == sorted(up) and down == sorted(down, reverse=True)
        if ordered and (len(set(up)) < 2 or up != down):
            return [Finding(assumption, how, HOLDS, f"asc starts {up[0]!r}, desc starts {down[0]!r}")]
        return [
            Finding(
                assumption, how, FAILS, f"accepted but not ordered so: asc {up[:3]}..., desc {down[:3]}..."
            )
        ]
    return [Finding(assumption, "sort=messageId,asc; sort=status.date,asc", FAILS, "; ".join(refusals))]


def _status_date(message: Mapping[str, Any]) -> str:
    status = message.get("status")
    return str(status.get("date") or "") if isinstance(status, Mapping) else ""


def check_date_end_boundary(client: ProbeClient, ctx: Context) -> list[Finding]:
    """Find a message's creation time by bisection, then search ranges ending at it and 1 ms after."""
    assumption = HALF_OPEN
    how = (
        f"creation time of one message found by bisecting {DATE_START_PARAM} with an id filter; then "
        "[t - 1 h, t) and [t - 1 h, t + 1 ms)"
    )
    if ctx.data_range is None or not ctx.sample:
        return [Finding(assumption, how, UNCLEAR, "no messages found in any range")]
    if ctx.dates_ignored:
        return [Finding(assumption, how, UNCLEAR, "the date filter is not honoured (see above)")]
    message = ctx.sample[0]
    found = [{"fieldName": "id", "searchOperator": "is", "searchTerm": message["messageId"]}]

    def finds(start_ms: int, end_ms: int) -> bool:
        page = client.search(start_ms, end_ms, filters=found)
        if not page.ok:
            raise _Refused(page.error)
        return page.total > 0

    low, high = ctx.range_start(), ctx.now_ms
    try:
        # Narrow the bracket with the status date: the message was created before its status changed.
        hint = _parse_ms(_status_date(message))
        top = high if hint is None else min(high, (hint // _SECOND_MS + 1) * _SECOND_MS)
        bottom = max(low, top - 3600 * _SECOND_MS)
        if hint is not None and bottom < top and finds(bottom, top):
            low, high = bottom, top
        elif not finds(low, high):
            return [
                Finding(assumption, how, UNCLEAR, f"message {message['messageId']} not found again by id")
            ]
        # The largest whole second s with the message in [s, high), then the largest millisecond.
        second = _bisect(low // _SECOND_MS, high // _SECOND_MS, lambda s: finds(s * _SECOND_MS, high))
        created = second * _SECOND_MS
        try:
            created = _bisect(created, created + _SECOND_MS, lambda ms: finds(ms, high))
        except _Refused as refused:
            return [
                Finding(
                    assumption,
                    how,
                    UNCLEAR,
                    f"created in the second {iso_ms(created)}, but dates with milliseconds are refused "
                    f"({refused}), so a range cannot end exactly at the creation time",
                )
            ]
        before = created - 3600 * _SECOND_MS
        at = finds(before, created)
        after = finds(before, created + 1)
    except _Refused as refused:
        return [Finding(assumption, how, UNCLEAR, f"a search was refused: {refused}")]
    evidence = (
        f"message {message['messageId']} created at {iso_ms(created)}; ending at it: "
        f"{'found' if at else 'not found'}; ending 1 ms later: {'found' if after else 'not found'}"
    )
    if not at and after:
        return [Finding(assumption, how, HOLDS, evidence)]
    if at:
        evidence += (
            f"; an inclusive {DATE_END_PARAM} puts a message created on a boundary in both adjacent windows"
        )
    return [Finding(assumption, how, FAILS, evidence)]


class _Refused(Exception):
    """A search needed by a bisection was refused."""


def _bisect(low: int, high: int, holds: Callable[[int], bool]) -> int:
    """The largest ``x`` in ``[low, high)`` with ``holds(x)``, given ``holds(low)`` and monotony."""
    while high - low > 1:
        middle = (low + high) // 2
        if holds(middle):
            low = middle
        else:
            high = middle
    return low


def _parse_ms(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def check_filters(client: ProbeClient, ctx: Context) -> list[Finding]:
    """Two filters together: AND finds their intersection, OR their union."""
    assumption = "Several filters combine with AND"
    ids = list(dict.fromkeys(m["messageId"] for m in ctx.sample))
    if ctx.data_range is None or len(ids) < 2:
        return [Finding(assumption, "-", UNCLEAR, "fewer than two messages found")]
    first = next(m for m in ctx.sample if m["messageId"] == ids[0])
    status = (first.get("status") or {}).get("status") or ""
    start = ctx.range_start()
    same = client.search(start, ctx.now_ms, filters=[_is("id", ids[0]), _is("id", ids[1])], size=2)
    other_status = {"fieldName": "status.status", "searchOperator": "is_not", "searchTerm": status}
    mixed = client.search(start, ctx.now_ms, filters=[_is("id", ids[0]), other_status], size=1)
    how = f"id is A + id is B (two messages); id is A + status.status is_not {status!r} (A's status)"
    evidence = f"id+id: {_count(same)}; id+status: {_count(mixed)} (AND gives 0 and 0)"
    if not (same.ok and mixed.ok):
        return [Finding(assumption, how, UNCLEAR, evidence)]
    return [Finding(assumption, how, HOLDS if same.total == 0 and mixed.total == 0 else FAILS, evidence)]


def _is(name: str, term: str) -> dict[str, str]:
    return {"fieldName": name, "searchOperator": "is", "searchTerm": term}


def check_tagged(client: ProbeClient, ctx: Context) -> list[Finding]:
    """``tagged=true`` and ``tagged=false`` split the range into messages with and without a campaign."""
    assumption = "The boolean parameter is tagged: true = only messages of a campaign"
    how = "tagged=true and tagged=false over the range, 20 messages each, against the untagged count"
    if ctx.data_range is None:
        return [Finding(assumption, how, UNCLEAR, "no messages found in any range")]
    start, total = ctx.range_start(), ctx.data_range[1].total
    yes = client.search(start, ctx.now_ms, size=20, tagged=True)
    no = client.search(start, ctx.now_ms, size=20, tagged=False)
    evidence = f"all: {total}; tagged=true: {_count(yes)}; tagged=false: {_count(no)}"
    if not (yes.ok and no.ok):
        return [Finding(assumption, how, FAILS, evidence)]
    if yes.total == total and no.total == total:
        return [Finding(assumption, how, FAILS, evidence + ": the parameter is ignored (another name?)")]
    with_campaign = sum(1 for m in yes.content if m.get("campaign"))
    without = sum(1 for m in no.content if not m.get("campaign"))
    evidence += (
        f"; with a campaign: {with_campaign} of {len(yes.content)} (true), "
        f"without: {without} of {len(no.content)} (false)"
    )
    split = yes.total + no.total == total
    if split and with_campaign == len(yes.content) and without == len(no.content):
        return [Finding(assumption, how, HOLDS, evidence)]
    return [Finding(assumption, how, FAILS, evidence)]


def check_unknown(client: ProbeClient, ctx: Context, wait: float) -> list[Finding]:
    """Check that messages in ``Unknown``, read again after ``wait`` seconds, are still ``Unknown``."""
    assumption = "Unknown is final"
    how = f"messages in Unknown, re-read by id after {wait:g} s"
    if ctx.data_range is None:
        return [Finding(assumption, how, UNCLEAR, "no messages found in any range")]
    start = ctx.range_start()
    unknown = client.search(
        start, ctx.now_ms, filters=[_is("status.status", "Unknown")], size=UNKNOWN_REREADS
    )
    if not unknown.ok:
        return [Finding(assumption, how, UNCLEAR, unknown.error)]
    if not unknown.content:
        return [Finding(assumption, how, UNCLEAR, "no message in Unknown in the range")]
    client.sleep(wait)
    changed, dates = [], []
    for message in unknown.content:
        again = client.search(start, ctx.now_ms, filters=[_is("id", message["messageId"])], size=1)
        if not again.ok or not again.content:
            return [
                Finding(assumption, how, UNCLEAR, f"{message['messageId']} not read again: {_count(again)}")
            ]
        status = (again.content[0].get("status") or {}).get("status")
        dates.append(_status_date(message))
        if status != "Unknown":
            changed.append(f"{message['messageId']} -> {status}")
    evidence = f"{unknown.total} in Unknown; {len(unknown.content)} re-read"
    if changed:
        return [Finding(assumption, how, FAILS, f"{evidence}; changed: {', '.join(changed)}")]
    return [
        Finding(assumption, how, HOLDS, f"{evidence}: all still Unknown (status dates from {min(dates)})")
    ]


def check_rate_limits(client: ProbeClient) -> list[Finding]:
    """Check that every 429 met during the run said how long to wait."""
    assumption = "A 429 says in Retry-After how long to wait"
    how = f"every 429 met during this run's {client.sent} requests"
    if not client.rate_limits:
        return [Finding(assumption, how, UNCLEAR, "no 429 met")]
    values = sorted({value or "(none)" for value in client.rate_limits})
    missing = sum(1 for value in client.rate_limits if not value)
    evidence = f"{len(client.rate_limits)} times 429; Retry-After: {', '.join(values)}"
    return [Finding(assumption, how, FAILS if missing else HOLDS, evidence)]


# ------------------------------------------------------------------------------------------------


def run(
    client: ProbeClient, *, unknown_wait: float = DEFAULT_UNKNOWN_WAIT, now: datetime | None = None
) -> list[Finding]:
    """
    Run every check, in order, within the client's request budget.

    :raises VoiceTrackError: when no token can be had (nothing else can be checked).
    """
    moment = now or datetime.now(timezone.utc)
    ctx = Context(now_ms=int(moment.timestamp()) * _SECOND_MS)
    client.token()
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("Range limits", lambda: check_range_limits(client, ctx)),
        (DATE_FILTER, lambda: check_date_filter(client, ctx)),
        (CAMPAIGN_FILTER, lambda: check_campaign_filter(client, ctx)),
        ("Page size", lambda: check_page_size(client, ctx)),
        ("Sort syntax", lambda: check_sort(client, ctx)),
        (HALF_OPEN, lambda: check_date_end_boundary(client, ctx)),
        ("Several filters combine with AND", lambda: check_filters(client, ctx)),
        ("The boolean parameter is tagged", lambda: check_tagged(client, ctx)),
        ("Unknown is final", lambda: check_unknown(client, ctx, unknown_wait)),
    ]
    findings: list[Finding] = []
    for name, check in checks:
        try:
            findings.extend(check())
        except BudgetExhausted:
            findings.append(
                Finding(name, "-", UNCLEAR, f"the request budget ({client.max_requests}) ran out")
            )
    findings.extend(check_rate_limits(client))
    return findings


def render(findings: Sequence[Finding]) -> str:
    """The findings as a Markdown table."""
    lines = ["| assumption | how it was tested | result | evidence |", "|:--|:--|:--|:--|"]
    for f in findings:
        cells = (f.assumption, f.how, f"**{f.result}**" if f.result == FAILS else f.result, f.evidence)
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines)


def settings_from_arguments(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """
    Build the connection settings from the command line.

    From ``--conn-id`` (an Airflow connection), or from ``--host``, ``--auth-url``, ``--app-id`` and
    the secret in the environment variable ``--secret-env``.

    :raises ValueError: naming the missing argument.
    """
    if args.conn_id:
        from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

        return VoiceTrackHook(args.conn_id).settings
    app_id = args.app_id or environ.get("VOICETRACK_APP_ID")
    secret = environ.get(args.secret_env)
    if not app_id:
        raise ValueError(
            "give --conn-id, or --app-id (or VOICETRACK_APP_ID) with the secret in the environment"
        )
    if not secret:
        raise ValueError(f"set the environment variable {args.secret_env} to the application secret")
    extra = {"auth_url": args.auth_url or environ.get("VOICETRACK_AUTH_URL") or ""}
    return Settings.from_connection(
        conn_id="the command line",
        host=args.host or environ.get("VOICETRACK_HOST"),
        port=None,
        login=app_id,
        password=secret,
        extra=extra,
        overrides={},
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_voicetrack.probe",
        description="Check this provider's assumptions about the voice tracking API with read-only searches.",
    )
    parser.add_argument("--conn-id", help="an Airflow connection of type voicetrack")
    parser.add_argument(
        "--host", help="API base URL (default https://connect.routee.net; env VOICETRACK_HOST)"
    )
    parser.add_argument("--auth-url", help="OAuth2 token URL (default https://auth.routee.net/oauth/token)")
    parser.add_argument("--app-id", help="application id (env VOICETRACK_APP_ID)")
    parser.add_argument(
        "--secret-env",
        default="VOICETRACK_APP_SECRET",
        help="environment variable holding the application secret (default VOICETRACK_APP_SECRET)",
    )
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS, help="request budget")
    parser.add_argument(
        "--unknown-wait", type=float, default=DEFAULT_UNKNOWN_WAIT, help="seconds before re-reading Unknown"
    )
    parser.add_argument("--max-wait", type=float, default=PROBE_MAX_WAIT, help="cap on one Retry-After wait")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the probe and print its table; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.max_requests < 10:
        print("error: --max-requests must be at least 10", file=sys.stderr)
        return 2
    try:
        settings = settings_from_arguments(args, os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = ProbeClient(settings, args.max_requests, max_wait=args.max_wait)
    started = time.monotonic()
    try:
        findings = run(client, unknown_wait=args.unknown_wait)
    except (VoiceTrackError, BudgetExhausted, requests.RequestException) as exc:
        print(f"error: the probe could not start: {client.redact(str(exc))}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(
        f"VoiceTrack API probe of {settings.base_url}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print(render(findings))
    print(f"\n{client.sent} requests (read-only searches and one token), {time.monotonic() - started:.1f} s.")
    return 1 if any(f.result == FAILS for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
