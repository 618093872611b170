"""
The emulator's ASGI application.

Routee's voice tracking API, its token endpoint and the admin endpoints, on one port.

Built on Starlette, the ASGI toolkit FastAPI is made of (and which Airflow ships): the handlers
parse and validate requests themselves so errors carry the API's own error body, and answer with
raw JSON bytes encoded by msgspec, so FastAPI's request models would add only import time.

Error bodies: API errors use Routee's ``{"code", "developerMessage", "properties"}``; the token
endpoint answers 401 ``{"error", "message"}`` and 400 ``{"error", "error_description"}`` as
documented; a missing, unknown or expired bearer token (and an injected 401/403) gets the OAuth2
resource-server shape ``{"error": "invalid_token" | "access_denied", "error_description"}``.

Unknown conversation or campaign ids give an empty page (they are searches), an unknown messageId
a 404 with code ``404013001``.

Query parameters: each endpoint has its own (:data:`~airflow_voicetrack.constants.SEARCH_PARAMS`,
:data:`~airflow_voicetrack.constants.LISTING_PARAMS`, none for one message). Any other gets a 400
Validation Error naming it, so a client that sends a wrong name fails in every test. With
``lenient_params`` they are ignored silently instead, as a typical Spring service does, and
``date_params`` renames the search's date range (``dateStart,dateEnd``): together they play a service
whose names differ from ours, which the client's date check and the probe must notice. The admin
truth endpoint always takes our names.

Records inserted while a client pages (``insert_during_paging = N``): when page 0 of a
``POST /voice/tracking`` search that has more than one page has been computed, N new messages are
inserted: copies (new ``messageId`` and ``conversationTrackingId``) of the first N matches, created
at the same instant as the first match. They therefore lie inside the searched range, match the same
filters, campaign and ``tagged`` restriction, and in the default order sort before everything on
page 1 and later: an offset-paging client sees later pages shifted by N (the last N items of a page
come again at the start of the next), and ``totalElements``/``totalPages`` grow between page 0 and
page 1. No message that existed when the search started is lost, provided the client pages until
``last`` (not to the page count it saw first) and drops duplicates by ``messageId``; the truth
endpoint includes the inserted messages.

Records deleted while a client pages (``delete_during_paging = K``): when page 0 of such a search
has been computed, the first K matches (in default order, so messages on page 0) are deleted. Page 0
reported N messages; every later page, each consistent with itself, reports N - K, and an
offset-paging client misses the K messages that moved up onto page 0's positions. Its count of
distinct messages (N - K) then contradicts the N that page 0 announced, which is what a strict
search must refuse. :meth:`Emulator.reset` (``POST /_emulator/reset``) restores the deleted messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import secrets
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from airflow_voicetrack.constants import (
    CAMPAIGN_PATH,
    CONVERSATION_PATH,
    DATE_END_PARAM,
    DATE_START_PARAM,
    LISTING_PARAMS,
    MESSAGE_PATH,
    SEARCH_PARAMS,
    SEARCH_PATH,
)
from airflow_voicetrack.emulator.clock import EmulatorClock
from airflow_voicetrack.emulator.faults import FaultMiddleware, FaultSchedule, FaultSettings, InFlight
from airflow_voicetrack.emulator.query import (
    SearchQuery,
    ValidationError,
    check_known_params,
    matches_all,
    page_envelope,
    parse_datetime_ms,
    parse_paging,
    parse_search,
    parse_sort,
    search_params,
    sort_items,
)
from airflow_voicetrack.emulator.requestlog import RequestLog, RequestLogMiddleware
from airflow_voicetrack.emulator.store import Entry, Store

TOKEN_PATH = "/oauth/token"
_encode = msgspec.json.encode
_PREFIX = "/voice/tracking/"


@dataclass
class EmulatorConfig:
    """Everything the emulator is started with (the CLI flags).

    :param seed: data set seed.
    :param messages: number of initial messages.
    :param start: ISO start of their creation times.
    :param end: ISO end of their creation times (exclusive).
    :param client_id: accepted application id.
    :param client_secret: accepted application secret.
    :param settle_seconds: seconds over which statuses reach their final value.
    :param arrival_rate: new messages per second while running.
    :param settle_lag: ``(min, max)`` seconds after its creation at which each message is final;
        excludes ``settle_seconds``.
    :param faults: initial fault settings.
    :param lenient_params: ignore query parameters an endpoint does not have, instead of a 400.
    :param date_params: the names of the search's date range (start, end).
    :param request_log: keep the last this many API and token exchanges for
        ``GET /_emulator/requests`` (0: no log); see :mod:`airflow_voicetrack.emulator.requestlog`.
    """

    seed: int = 1
    messages: int = 10_000
    start: str = "2026-11-01T00:00:00Z"
    end: str = "2026-11-08T00:00:00Z"
    client_id: str = "demo-app-id"
    client_secret: str = "demo-app-secret"
    settle_seconds: float = 0.0
    arrival_rate: float = 0.0
    settle_lag: tuple[float, float] | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)
    lenient_params: bool = False
    date_params: tuple[str, str] = (DATE_START_PARAM, DATE_END_PARAM)
    request_log: int = 0


def route_template(method: str, path: str) -> str:
    """The stats key of a request: ``"<METHOD> <route template>"``.

    :param method: HTTP method.
    :param path: request path.
    """
    if path in (SEARCH_PATH, TOKEN_PATH):
        template = path
    elif path.startswith(_PREFIX + "conversation/"):
        template = CONVERSATION_PATH
    elif path.startswith(_PREFIX + "campaign/"):
        template = CAMPAIGN_PATH
    elif path.startswith(_PREFIX) and "/" not in path[len(_PREFIX) :]:
        template = MESSAGE_PATH
    else:
        template = path
    return f"{method} {template}"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(data), status, headers, media_type="application/json")


def _api_error(status: int, code: str, message: str, properties: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "developerMessage": message}
    if properties is not None:
        body["properties"] = properties
    return _json(body, status)


def _validation_error(properties: dict[str, str]) -> Response:
    return _api_error(400, "400000000", "Validation Error!", properties)


def _auth_error_body(status: int, description: str | None = None) -> bytes:
    if status == 401:
        return _encode({"error": "invalid_token", "error_description": description or "Invalid access token"})
    return _encode({"error": "access_denied", "error_description": description or "Access is denied"})


class Emulator:
    """State and handlers of one emulator instance.

    :param config: start-up configuration.
    :param clock: the emulator's clock (status settling, token expiry, arrivals), which
        ``POST /_emulator/clock`` freezes and steps.
    """

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock | None = None) -> None:
        self.config = config
        self.clock = clock = clock or EmulatorClock()
        self.store = Store(
            config.seed,
            config.messages,
            parse_datetime_ms(config.start),
            parse_datetime_ms(config.end),
            settle_seconds=config.settle_seconds,
            arrival_rate=config.arrival_rate,
            settle_lag=config.settle_lag,
            clock=clock,
        )
        self.faults = FaultSchedule(config.faults)
        self.tokens: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.tokens_issued = 0
        self.in_flight = InFlight()
        self._cache: OrderedDict[tuple, list[Entry]] = OrderedDict()
        self.request_log = RequestLog(config.request_log) if config.request_log else None

    # -- plumbing ------------------------------------------------------------------------------

    def count_request(self, method: str, path: str) -> None:
        """Count one non-admin request for ``/_emulator/stats``.

        :param method: HTTP method.
        :param path: request path.
        """
        self.requests[route_template(method, path)] += 1

    def _check_token(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            description = "Full authentication is required to access this resource"
        else:
            expires = self.tokens.get(token.strip())
            if expires is not None and expires > self.clock():
                return None
            description = "Access token expired" if expires is not None else "Invalid access token"
        return Response(
            _auth_error_body(401, description),
            401,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            media_type="application/json",
        )

    def _now(self) -> float:
        now = self.clock()
        self.store.catch_up(now)
        return now

    def _select(self, query: SearchQuery, now: float) -> list[Entry]:
        """Entries matching a search (range, campaign, tagged, filters) in default order."""
        store = self.store
        deviations = self.faults.settings
        end_ms = query.end_ms
        if end_ms is not None and deviations.inclusive_date_end:
            end_ms += 1  # creation times are whole milliseconds: [start, end] == [start, end + 1 ms)
        lo, hi = store.index_range(query.start_ms, end_ms)
        entries = store.entries[lo:hi]
        if query.campaign_id is not None:
            cid = query.campaign_id
            entries = [e for e in entries if store.record(e).campaign_id == cid]
        if query.tagged is not None:
            tagged = query.tagged
            entries = [e for e in entries if (store.record(e).campaign_id is not None) == tagged]
        if query.filters:
            filters, combine = query.filters, deviations.filters_combine
            entries = [
                e for e in entries if matches_all(filters, store.doc(e, now), store.status(e, now), combine)
            ]
        return entries

    def _ordered(
        self, key: tuple, select: Callable[[], list[Entry]], sort: list[tuple[str, bool]], now: float
    ) -> list[Entry]:
        """
        Return the selected entries in ``sort`` order.

        Cached while the data cannot change, so paging through a filtered or sorted search does not
        redo the work for every page.

        :param key: identifies the selection (without paging).
        :param select: computes the selection in default order.
        :param sort: requested order.
        :param now: wall-clock time, epoch seconds.
        """

        def compute() -> list[Entry]:
            entries = select()
            if sort:
                pairs = sort_items([(e, self.store.doc(e, now)) for e in entries], sort)
                entries = [e for e, _ in pairs]
            return entries

        if not self.store.is_settled(now):
            return compute()
        full_key = (self.store.version, *key, tuple(sort))
        entries = self._cache.get(full_key)
        if entries is None:
            entries = self._cache[full_key] = compute()
            if len(self._cache) > 32:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(full_key)
        return entries

    def _page(self, entries: list[Entry], page: int, size: int, now: float) -> Response:
        """A page envelope response over ``entries`` (already in order)."""
        offset = page * size
        content = [self.store.json(e, now) for e in entries[offset : offset + size]]
        envelope = page_envelope(len(entries), page, size, len(content))
        variant = self.faults.inconsistent_variant()
        if variant == 1:
            envelope["numberOfElements"] += 1
        elif variant == 2:
            envelope["totalPages"] += 1
        return self._envelope_response(content, envelope)

    @staticmethod
    def _envelope_response(content: Iterable[bytes], envelope: dict[str, Any]) -> Response:
        body = b'{"content":[' + b",".join(content) + b"]," + _encode(envelope)[1:]
        return Response(body, media_type="application/json")

    def _check_params(
        self, params: dict[str, list[str]], known: tuple[str, ...], errors: dict[str, str]
    ) -> None:
        if not self.config.lenient_params:
            check_known_params(params, known, errors)

    # -- API -----------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token``: OAuth2 client credentials with HTTP Basic auth."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client_id = secret = None
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                client_id, _, secret = (
                    base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
                )
        if client_id != self.config.client_id or secret != self.config.client_secret:
            return _json({"error": "unauthorized", "message": "Bad credentials"}, 401)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "client_credentials":
            error = "unsupported_grant_type" if grant_type else "invalid_request"
            description = f"Unsupported grant type: {grant_type}" if grant_type else "Missing grant type"
            return _json({"error": error, "error_description": description}, 400)
        lifetime = self.faults.settings.token_lifetime
        token = secrets.token_urlsafe(32)
        now = self.clock()
        if len(self.tokens) > 10_000:
            self.tokens = {t: expires for t, expires in self.tokens.items() if expires > now}
        self.tokens[token] = now + lifetime
        self.tokens_issued += 1
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": math.ceil(lifetime),
                "scope": form.get("scope", ["voice,account"])[0],
                "permissions": ["MT_ROLE_VOICE", "MT_ROLE_REPORTS", "MT_ROLE_ACCOUNT"],
            }
        )

    async def search(self, request: Request) -> Response:
        """``POST /voice/tracking``: the filtered, paged search."""
        denied = self._check_token(request)
        if denied:
            return denied
        deviations = self.faults.settings
        max_range_ms = round(deviations.max_range_days * 86_400_000) or None
        try:
            query = parse_search(
                _params(request),
                await request.body(),
                max_size=deviations.max_page_size,
                max_range_ms=max_range_ms,
                date_params=self.config.date_params,
                known=None if self.config.lenient_params else search_params(self.config.date_params),
            )
        except ValidationError as exc:
            return _validation_error(exc.properties)
        now = self._now()
        key = (
            "search",
            query.start_ms,
            query.end_ms,
            query.campaign_id,
            query.tagged,
            tuple(query.filters),
            deviations.inclusive_date_end,  # the deviations change the selection
            deviations.filters_combine,
        )
        entries = self._ordered(key, lambda: self._select(query, now), query.sort, now)
        response = self._page(entries, query.page, query.size, now)
        self.clock.tick()
        settings = self.faults.settings
        if query.page == 0 and len(entries) > query.size:
            if settings.delete_during_paging:
                self.store.delete(entries[: settings.delete_during_paging])
                self.faults.fired["delete_during_paging"] += 1
            if settings.insert_during_paging:
                extra = settings.insert_during_paging
                self.store.add_copies(entries[:extra], extra, entries[0].created_ms)
                self.faults.fired["insert_during_paging"] += 1
        return response

    async def message(self, request: Request) -> Response:
        """``GET /voice/tracking/{messageId}``."""
        denied = self._check_token(request)
        if denied:
            return denied
        errors: dict[str, str] = {}
        self._check_params(_params(request), (), errors)
        if errors:
            return _validation_error(errors)
        message_id = request.path_params["message_id"]
        now = self._now()
        entry = self.store.find(message_id)
        self.clock.tick()
        if entry is None:
            return _api_error(404, "404013001", "Voice message not found", {"messageId": message_id})
        return Response(self.store.json(entry, now), media_type="application/json")

    async def _listing(self, request: Request, key: tuple, select: Callable[[], list[Entry]]) -> Response:
        denied = self._check_token(request)
        if denied:
            return denied
        errors: dict[str, str] = {}
        params = _params(request)
        self._check_params(params, LISTING_PARAMS, errors)
        page, size = parse_paging(params, errors)
        sort = parse_sort(params.get("sort") or (), errors)
        if errors:
            return _validation_error(errors)
        now = self._now()
        response = self._page(self._ordered(key, select, sort, now), page, size, now)
        self.clock.tick()
        return response

    async def conversation(self, request: Request) -> Response:
        """``GET /voice/tracking/conversation/{conversationTrackingId}``: its dial parts, paged."""
        conversation_id = request.path_params["conversation_id"]
        return await self._listing(
            request, ("conversation", conversation_id), lambda: self.store.conversation(conversation_id)
        )

    async def campaign(self, request: Request) -> Response:
        """``GET /voice/tracking/campaign/{campaignTrackingId}``: its messages, paged."""
        campaign_id = request.path_params["campaign_id"]
        return await self._listing(
            request,
            ("campaign", campaign_id),
            lambda: [e for e in self.store.entries if self.store.record(e).campaign_id == campaign_id],
        )

    # -- admin ---------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """``GET /_emulator/health``."""
        return _json({"status": "ok"})

    async def truth(self, request: Request) -> Response:
        """
        ``POST /_emulator/truth``: every message matching a search, in messageId order.

        With ``?idsOnly=true`` only their ``messageIds`` (for checking millions of messages). Always our
        parameter names, strictly, whatever ``lenient_params`` and ``date_params`` say: the truth is
        what our client's search should find.
        """
        try:
            query = parse_search(_params(request), await request.body(), known=(*SEARCH_PARAMS, "idsOnly"))
        except ValidationError as exc:
            return _validation_error(exc.properties)
        now = self._now()
        if request.query_params.get("idsOnly") == "true":
            ids = sorted(self.store.record(e).doc["messageId"] for e in self._select(query, now))
            return _json({"messageIds": ids, "totalElements": len(ids)})
        pairs = [(self.store.doc(e, now), e) for e in self._select(query, now)]
        pairs.sort(key=lambda pair: pair[0]["messageId"])
        content = [self.store.json(e, now) for _, e in pairs]
        body = (
            b'{"content":[' + b",".join(content) + b'],"totalElements":' + str(len(content)).encode() + b"}"
        )
        return Response(body, media_type="application/json")

    async def stats(self, request: Request) -> Response:
        """``GET /_emulator/stats``."""
        return _json(
            {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "tokens_issued": self.tokens_issued,
                "search_in_flight_max": self.in_flight.most,
                "faults_fired": dict(self.faults.fired),
                "search_statuses": {str(k): v for k, v in sorted(self.in_flight.statuses.items())},
            }
        )

    async def spans(self, request: Request) -> Response:
        """
        ``GET /_emulator/spans``: each search request's ``[start, end]``, and when each 429 was sent.

        Seconds on the emulator's monotonic clock.
        """
        return _json({"spans": list(self.in_flight.spans), "refused_at": list(self.in_flight.refused_at)})

    async def requests_log(self, request: Request) -> Response:
        """``GET /_emulator/requests``: the logged exchanges, oldest first (``--request-log N``)."""
        if self.request_log is None:
            return _api_error(
                404, "404000000", "The request log is off: start the emulator with --request-log N"
            )
        return _json({"requests": self.request_log.snapshot()})

    async def reset_stats(self, request: Request) -> Response:
        """``POST /_emulator/stats/reset``."""
        self.requests.clear()
        if self.request_log is not None:
            self.request_log.clear()
        self.tokens_issued = 0
        self.in_flight.reset()
        self.faults.fired.clear()
        return _json({"status": "ok"})

    async def faults_get(self, request: Request) -> Response:
        """``GET /_emulator/faults``: the current settings."""
        return _json(asdict(self.faults.settings))

    async def faults_put(self, request: Request) -> Response:
        """``PUT /_emulator/faults``: merge settings into the current ones."""
        try:
            updates = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return _validation_error({"body": "malformed JSON"})
        if not isinstance(updates, dict):
            return _validation_error({"body": "must be a JSON object of fault settings"})
        try:
            settings = self.faults.settings.merged(updates)
        except ValueError as exc:
            return _validation_error({"faults": str(exc)})
        self.faults.replace(settings)
        return _json(asdict(settings))

    async def faults_delete(self, request: Request) -> Response:
        """``DELETE /_emulator/faults``: everything off."""
        self.faults.replace(FaultSettings())
        return _json(asdict(self.faults.settings))

    async def reset(self, request: Request) -> Response:
        """
        ``POST /_emulator/reset``: start again from the initial data.

        Put the clock back on the wall clock, running; restart the status progression; clear stats and
        faults; drop arrivals; restore deleted messages.
        """
        self.clock.restart()
        self.store.reset()
        self.faults.replace(FaultSettings())
        self.faults.fired.clear()
        self.requests.clear()
        if self.request_log is not None:
            self.request_log.clear()
        self.tokens_issued = 0
        self.in_flight.reset()
        return _json({"status": "ok"})

    def _clock_state(self) -> Response:
        return _json({"now": self.clock(), "frozen": self.clock.frozen, "tick": self.clock.tick_seconds})

    async def clock_get(self, request: Request) -> Response:
        """``GET /_emulator/clock``: the emulator's time and whether it is frozen."""
        return self._clock_state()

    async def clock_post(self, request: Request) -> Response:
        """
        ``POST /_emulator/clock`` ``{"freeze": true, "advance": s, "tick": s, "resume": true}``.

        Freeze the clock, step it forward, set how far a frozen clock steps after each API request,
        let it run again; applied in that order, any subset. Status settling, token expiry and
        arrivals follow it. Answers as ``GET``.
        """
        try:
            body = msgspec.json.decode(await request.body() or b"{}")
        except msgspec.DecodeError:
            return _validation_error({"body": "malformed JSON"})
        if not isinstance(body, dict):
            return _validation_error({"body": "must be a JSON object: freeze, advance, tick, resume"})
        known = ("freeze", "advance", "tick", "resume")
        unknown = sorted(set(body) - set(known))
        if unknown:
            return _validation_error({name: f"unknown; known: {', '.join(known)}" for name in unknown})
        errors = {
            name: "must be true or false"
            for name in ("freeze", "resume")
            if not isinstance(body.get(name, False), bool)
        }
        for name in ("advance", "tick"):
            value = body.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                errors[name] = "must be a number of seconds >= 0"
        if errors:
            return _validation_error(errors)
        if body.get("freeze"):
            self.clock.freeze()
        self.clock.advance(body.get("advance", 0))
        if "tick" in body:
            self.clock.tick_seconds = float(body["tick"])
        if body.get("resume"):
            self.clock.resume()
        self._now()  # arrivals up to the new time
        return self._clock_state()

    async def add_messages(self, request: Request) -> Response:
        """``POST /_emulator/messages`` ``{"count": n, "created_at": ISO?}``: add messages now."""
        try:
            body = msgspec.json.decode(await request.body() or b"{}")
        except msgspec.DecodeError:
            return _validation_error({"body": "malformed JSON"})
        count = body.get("count", 1) if isinstance(body, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return _validation_error({"count": "must be an integer >= 0"})
        created_ms = None
        if body.get("created_at"):
            try:
                created_ms = parse_datetime_ms(str(body["created_at"]))
            except ValueError:
                return _validation_error({"created_at": "must be an ISO-8601 date-time"})
        self._now()
        added = self.store.add_messages(count, created_ms)
        ids = [self.store.record(e).doc["messageId"] for e in added]
        return _json({"added": len(ids), "messageIds": ids})

    async def warm_up(self) -> None:
        """Build messages in small slices between requests, so pages are fast from the start."""
        while True:
            more = self.store.warm(200)
            await asyncio.sleep(0 if more else 0.5)


def _params(request: Request) -> dict[str, list[str]]:
    query = request.query_params
    return {name: query.getlist(name) for name in query}


async def _no_route(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    message = "Method not allowed" if status == 405 else "No such resource"
    return _api_error(status, f"{status}000000", f"{message}: {request.method} {request.url.path}")


def create_app(config: EmulatorConfig | None = None) -> tuple[ASGIApp, Emulator]:
    """Build the emulator's ASGI application.

    :param config: start-up configuration (defaults as the CLI's).
    :returns: the ASGI app (fault middleware around the routes, inside the request log when there
        is one) and its :class:`Emulator` state.
    """
    emulator = Emulator(config or EmulatorConfig())
    e = emulator

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(e.warm_up())
        yield
        task.cancel()

    routes = [
        Route(TOKEN_PATH, e.token, methods=["POST"]),
        Route(SEARCH_PATH, e.search, methods=["POST"]),
        Route(CONVERSATION_PATH.replace("conversation_tracking_id", "conversation_id"), e.conversation),
        Route(CAMPAIGN_PATH, e.campaign),
        Route(MESSAGE_PATH, e.message),
        Route("/_emulator/health", e.health),
        Route("/_emulator/truth", e.truth, methods=["POST"]),
        Route("/_emulator/stats", e.stats),
        Route("/_emulator/stats/reset", e.reset_stats, methods=["POST"]),
        Route("/_emulator/spans", e.spans),
        Route("/_emulator/requests", e.requests_log),
        Route("/_emulator/faults", e.faults_get, methods=["GET"]),
        Route("/_emulator/faults", e.faults_put, methods=["PUT"]),
        Route("/_emulator/faults", e.faults_delete, methods=["DELETE"]),
        Route("/_emulator/reset", e.reset, methods=["POST"]),
        Route("/_emulator/messages", e.add_messages, methods=["POST"]),
        Route("/_emulator/clock", e.clock_get, methods=["GET"]),
        Route("/_emulator/clock", e.clock_post, methods=["POST"]),
    ]
    # An unknown path or method gets the API's error body, as every other error does (not Starlette's
    # plain-text page): e.g. a messageId holding an encoded "/" reaches no route.
    handlers = {404: _no_route, 405: _no_route}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    middleware = FaultMiddleware(
        app,
        emulator.faults,
        emulator.count_request,
        lambda status: _auth_error_body(status),
        emulator.in_flight,
        SEARCH_PATH,
        lambda: emulator.tokens.clear(),
    )
    if emulator.request_log is not None:
        return RequestLogMiddleware(middleware, emulator.request_log), emulator
    return middleware, emulator
