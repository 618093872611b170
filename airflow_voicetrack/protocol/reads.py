"""
The hooks' reads, free of I/O: what each public method of the two hooks asks of the API.

- the searches read page by page: :func:`search_run`, :func:`conversation_run` and
  :func:`campaign_run` build the :class:`~.paging.SearchRun` a driver pages through;
- the reads of one request, or of one request per message: :func:`count_flow`,
  :func:`first_ids_flow`, :func:`message_flow`, :func:`messages_flow`;
- :func:`connection_check_flow`, what ``test_connection`` runs.

A hook validates its arguments here (:func:`search_query`, :func:`required_campaign`) when it is
called, and hands the run or the flow to its driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_voicetrack.protocol.bodies import Page, parse_message, parse_page
from airflow_voicetrack.protocol.calls import Flow, Gather, GetToken, Log, allow_missing, request_flow
from airflow_voicetrack.protocol.http import Request
from airflow_voicetrack.protocol.paging import PageSource, SearchRun, WindowStartCheck
from airflow_voicetrack.protocol.query import (
    SearchFilter,
    SearchQuery,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    format_datetime,
    resolve_campaign_tracking_id,
    validate_sort,
)

if TYPE_CHECKING:
    from airflow_voicetrack.protocol.settings import Settings


def search_query(
    date_start: datetime | str | None = None,
    date_end: datetime | str | None = None,
    *,
    filters: Iterable[Mapping[str, Any] | SearchFilter] | None = None,
    campaign_tracking_id: str | None = None,
    sort: str | None = None,
    tagged: bool | None = None,
    page_size: int | None = None,
    campaign_id: str | None = None,
) -> SearchQuery:
    """
    Validate a search's arguments before any request; either bound may be ``None`` (open range).

    :param page_size: messages per page; ``None`` for one (a count, a poke), which
        :func:`search_run` replaces with the connection's page size.
    :param campaign_id: the deprecated name of ``campaign_tracking_id``: its warning names the code
        that called the hook (or the wait) that called this.
    :raises ValueError: naming the argument at fault.
    """
    tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id, stacklevel=4)
    return SearchQuery.build(
        date_start,
        date_end,
        filters=filters,
        campaign_tracking_id=tracking_id,
        sort=sort,
        tagged=tagged,
        page_size=1 if page_size is None else page_size,
        require_range=False,
    )


def required_campaign(campaign_tracking_id: str | None, campaign_id: str | None) -> str:
    """
    Read the campaign argument of ``get_campaign_messages`` under either name.

    :raises ValueError: when neither name is given.
    """
    tracking_id = resolve_campaign_tracking_id(campaign_tracking_id, campaign_id, stacklevel=4)
    if tracking_id is None:
        raise ValueError("get_campaign_messages needs campaign_tracking_id, the campaign's tracking id")
    return tracking_id


def search_run(
    settings: Settings,
    query: SearchQuery,
    *,
    page_size: int | None = None,
    limit: int | None = None,
    strict: bool = False,
    raw: bool = False,
    log: Log | None = None,
) -> SearchRun:
    """
    The run of ``query``, window by window (the connection's ``window``).

    :param page_size: messages per page; ``None`` for the connection's.
    The other parameters are :class:`~.paging.SearchRun`'s.
    """
    if page_size is None:
        query = replace(query, page_size=settings.page_size)
    sources: list[PageSource] = []
    for bounds in query.windows(settings.window):
        label = "window [{}, {})".format(*(format_datetime(b) if b else "-" for b in bounds))
        sources.append((label, partial(query.page_request, settings.base_url, bounds), bounds[0]))
    return SearchRun(
        sources, settings, page_size=query.page_size, limit=limit, strict=strict, raw=raw, log=log
    )


def conversation_run(
    settings: Settings, conversation_tracking_id: str, *, strict: bool = False, log: Log | None = None
) -> SearchRun:
    """The run of one conversation's dial parts (its id is validated now)."""
    build_conversation_request(settings.base_url, conversation_tracking_id, page=0, size=1)  # validate
    source = partial(build_conversation_request, settings.base_url, conversation_tracking_id)
    label = f"conversation {conversation_tracking_id}"
    return _paged_run(settings, label, source, settings.page_size, strict, log)


def campaign_run(
    settings: Settings,
    campaign_tracking_id: str,
    *,
    sort: str | None = None,
    page_size: int | None = None,
    strict: bool = False,
    log: Log | None = None,
) -> SearchRun:
    """The run of one campaign's messages (its id and ``sort`` are validated now)."""
    size = settings.page_size if page_size is None else page_size
    sort = validate_sort(sort)
    build_campaign_request(settings.base_url, campaign_tracking_id, page=0, size=size, sort=sort)  # validate
    source = partial(build_campaign_request, settings.base_url, campaign_tracking_id, sort=sort)
    return _paged_run(settings, f"campaign {campaign_tracking_id}", source, size, strict, log)


def _paged_run(
    settings: Settings,
    label: str,
    source: Callable[..., Request],
    page_size: int,
    strict: bool,
    log: Log | None,
) -> SearchRun:
    """The run of one paged endpoint, read whole: ``source(page=..., size=...)`` builds its requests."""
    pages = [(label, lambda page, size: source(page=page, size=size), None)]
    return SearchRun(pages, settings, page_size=page_size, strict=strict, log=log)


def count_flow(settings: Settings, query: SearchQuery, log: Log | None = None) -> Flow[int]:
    """:return: a flow whose value is the API's ``totalElements`` for ``query`` (one page of one)."""
    request = query.page_request(settings.base_url, (query.date_start, query.date_end), 0, 1)
    page = yield from request_flow(settings, request, partial(parse_page, page=0, size=1), log)
    _check_dates(query, page)
    return page.total_elements


def _check_dates(query: SearchQuery, page: Page) -> None:
    """Check the messages a count or an id lookup got anyway, as a search's pages are checked."""
    if query.date_start is not None:
        label = f"search from {format_datetime(query.date_start)}"
        WindowStartCheck(query.date_start, label).check(page)


def first_ids_flow(
    settings: Settings,
    query: SearchQuery,
    log: Log | None = None,
) -> Flow[list[str]]:
    """:return: a flow whose value is the ids of page 0 of ``query`` over its whole range (one request)."""
    size = query.page_size
    request = query.page_request(settings.base_url, (query.date_start, query.date_end), 0, size)
    page = yield from request_flow(settings, request, partial(parse_page, page=0, size=size, raw=True), log)
    _check_dates(query, page)
    return page.message_ids()


def message_flow(settings: Settings, message_id: str, log: Log | None = None) -> Flow[dict[str, Any]]:
    """:return: a flow whose value is one message (it raises :class:`VoiceTrackNotFoundError` for none)."""
    return request_flow(settings, build_message_request(settings.base_url, message_id), parse_message, log)


def messages_flow(
    settings: Settings,
    message_ids: Iterable[str],
    *,
    missing_ok: bool = False,
    log: Log | None = None,
) -> Flow[dict[str, dict[str, Any] | None]]:
    """
    Fetch several messages, at most ``max_concurrency`` at once.

    :param missing_ok: map unknown ids to ``None`` instead of raising :class:`VoiceTrackNotFoundError`.
    :return: a flow whose value is ``{message_id: message or None}`` in the order of ``message_ids``,
        duplicates once.
    """
    flows = {}
    for message_id in message_ids:
        flow = message_flow(settings, message_id, log)
        flows[message_id] = allow_missing(flow) if missing_ok else flow
    results = yield Gather(list(flows.values()), settings.max_concurrency)
    return dict(zip(flows, results, strict=True))


def connection_check_flow(settings: Settings) -> Flow[int]:
    """
    What ``test_connection`` runs: get a token, then count the messages of the last day.

    :return: a flow whose value is that count (one search of a page of one).
    """
    yield GetToken(None)
    now = pendulum.now("UTC")
    return (yield from count_flow(settings, SearchQuery.build(now.subtract(days=1), now, page_size=1)))
