"""
The access token: its request (OAuth2 client credentials), the flow that gets it, and its cache.

A rejected token (401/403) is decided in :mod:`~airflow_voicetrack.protocol.calls` (:class:`Call`
answers with :class:`~airflow_voicetrack.protocol.calls.RefreshToken`); a driver then asks for a new
one with :class:`~airflow_voicetrack.protocol.calls.GetToken`, which it answers from its
:class:`TokenCache` or with :func:`token_flow`.
"""

from __future__ import annotations

import time
from functools import partial

from airflow_voicetrack.protocol.bodies import Token, parse_token
from airflow_voicetrack.protocol.calls import Flow, Log, call_flow
from airflow_voicetrack.protocol.http import Request
from airflow_voicetrack.protocol.settings import Settings, basic_credentials


def build_token_request(settings: Settings) -> Request:
    """:return: the OAuth2 client-credentials request for an access token."""
    data = {"grant_type": "client_credentials"}
    if settings.scope:
        data["scope"] = settings.scope
    return Request(
        "POST",
        settings.token_url,
        data=data,
        headers={"Authorization": basic_credentials(settings.client_id, settings.client_secret)},
        needs_token=False,
    )


def token_flow(settings: Settings, log: Log | None = None) -> Flow[Token]:
    """:return: a flow that gets a new access token with the client credentials of ``settings``."""
    now = time.monotonic()
    return call_flow(
        build_token_request(settings),
        partial(parse_token, now=now),
        settings.retry_policy,
        secrets=settings.secrets,
        log=log,
    )


class TokenCache:
    """The access token a driver shares between its requests; the driver serializes access."""

    def __init__(self) -> None:
        self.token: Token | None = None

    def usable(self, rejected: Token | None, now: float) -> Token | None:
        """:return: the cached token unless it is missing, ``rejected`` or due for renewal."""
        token = self.token
        if token is None or token is rejected or not token.is_fresh(now):
            return None
        return token
