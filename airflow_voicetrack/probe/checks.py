"""
The probe's checks: one function per assumption, each returning its findings, and :func:`run`.

How each assumption is tested is told in :mod:`airflow_voicetrack.probe`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_voicetrack.constants import (
    CAMPAIGN_TRACKING_ID_PARAM,
    DATE_END_PARAM,
    DATE_START_PARAM,
    MAX_PAGE_SIZE,
    OTHER_DATE_PARAMS,
)
from airflow_voicetrack.probe.client import (
    OUR_DATE_PARAMS,
    SECOND_MS,
    BudgetExhausted,
    Page,
    ProbeClient,
    iso_ms,
)

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

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "could not tell"
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Finding:
    """One row of the probe's table."""

    assumption: str
    how: str
    result: str
    evidence: str


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
        top = high if hint is None else min(high, (hint // SECOND_MS + 1) * SECOND_MS)
        bottom = max(low, top - 3600 * SECOND_MS)
        if hint is not None and bottom < top and finds(bottom, top):
            low, high = bottom, top
        elif not finds(low, high):
            return [
                Finding(assumption, how, UNCLEAR, f"message {message['messageId']} not found again by id")
            ]
        # The largest whole second s with the message in [s, high), then the largest millisecond.
        second = _bisect(low // SECOND_MS, high // SECOND_MS, lambda s: finds(s * SECOND_MS, high))
        created = second * SECOND_MS
        try:
            created = _bisect(created, created + SECOND_MS, lambda ms: finds(ms, high))
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
        before = created - 3600 * SECOND_MS
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
    ctx = Context(now_ms=int(moment.timestamp()) * SECOND_MS)
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
