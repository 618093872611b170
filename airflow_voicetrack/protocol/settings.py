"""Connection settings: defaults, validation of the connection, its extras and hook arguments."""

from __future__ import annotations

import base64
import difflib
import ipaddress
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_voicetrack.constants import DEFAULT_API_URL, DEFAULT_TOKEN_URL
from airflow_voicetrack.extras import BY_NAME, KNOWN_EXTRAS

#: Base of the exponential backoff, in seconds: waits grow 0.5, 1, 2, 4 ... (with jitter) up to the cap.
BACKOFF_BASE = 0.5


def unknown_extras(extra: Mapping[str, Any], conn_id: str) -> list[str]:
    """
    Describe each connection extra that no hook reads, naming the likely typo.

    An unknown extra is ignored, so a misspelt ``read_timout`` would silently keep the default: the
    hooks log these descriptions as warnings.

    :param extra: the connection's extras.
    :param conn_id: the connection id, for the message.
    :return: one sentence per unknown extra, empty when every extra is known.
    """
    problems = []
    for name in sorted(set(extra) - set(KNOWN_EXTRAS)):
        close = difflib.get_close_matches(str(name), KNOWN_EXTRAS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known extras: {', '.join(KNOWN_EXTRAS)}"
        problems.append(f"connection {conn_id!r} has an unknown extra {name!r}, which is ignored{hint}")
    return problems


@dataclass(frozen=True)
class RetryPolicy:
    """
    Limits on retrying one call.

    :param max_retries: retries after the first attempt (0 = no retry).
    :param max_retry_wait: cap on one wait, in seconds, ``Retry-After`` included.
    :param max_retry_time: cap on the total time one call may spend, in seconds; a retry whose wait
        would end after it is not made.
    """

    max_retries: int = BY_NAME["max_retries"].default
    max_retry_wait: float = BY_NAME["max_retry_wait"].default
    max_retry_time: float = BY_NAME["max_retry_time"].default

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """
        Return the wait before a retry.

        :param retry_number: 1 for the first retry.
        :return: exponential backoff with jitter: a random wait in the upper half of
            ``BACKOFF_BASE * 2 ** (retry_number - 1)``, capped at ``max_retry_wait``.
        """
        ceiling = min(self.max_retry_wait, BACKOFF_BASE * 2 ** (retry_number - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def basic_credentials(client_id: str, client_secret: str) -> str:
    """:return: the value of the token request's ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")


@dataclass(frozen=True)
class Settings:
    """
    Everything a hook needs to talk to the API, validated.

    Built from the Airflow connection with :meth:`from_connection`; a hook keyword argument wins
    over the connection extra of the same name, which wins over the default (the extra's, as
    :mod:`airflow_voicetrack.extras` declares it).
    """

    base_url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    connect_timeout: float = BY_NAME["connect_timeout"].default
    read_timeout: float = BY_NAME["read_timeout"].default
    verify_ssl: bool = True
    page_size: int = BY_NAME["page_size"].default
    max_concurrency: int = BY_NAME["max_concurrency"].default
    max_retries: int = BY_NAME["max_retries"].default
    max_retry_wait: float = BY_NAME["max_retry_wait"].default
    max_retry_time: float = BY_NAME["max_retry_time"].default
    window: timedelta = timedelta(hours=BY_NAME["window_hours"].default)
    request_deadline: float = BY_NAME["request_deadline"].default
    #: a fixed rate for the connection in this process (see :class:`~.limits.Limiter`), ``None``: none
    max_requests_per_second: float | None = None

    @classmethod
    def from_connection(
        cls,
        *,
        conn_id: str,
        host: str | None,
        port: int | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> Settings:
        """
        Validate a connection and the hook's keyword arguments, before any request.

        :param conn_id: the connection id, for error messages.
        :param host: API base URL with scheme; empty means :data:`DEFAULT_API_URL`.
        :param port: replaces the port of ``host`` when set.
        :param login: the application id.
        :param password: the application secret.
        :param extra: the connection's extras (``auth_url``, ``scope``, timeouts, ...).
        :param overrides: hook keyword arguments; ``None`` values are ignored.
        :raises ValueError: naming the field and the fix; also for a plain ``http://`` URL to a host
            that is not a loopback address, unless the extra ``allow_insecure_http`` is true.
        """
        where = f"connection {conn_id!r}"
        if not login:
            raise ValueError(f"{where} has no login: set it to the Routee application id")
        if not password:
            raise ValueError(f"{where} has no password: set it to the Routee application secret")
        values = {**{k: v for k, v in extra.items() if v not in (None, "")}}
        values.update({k: v for k, v in overrides.items() if v is not None})
        window = values.get("window")
        if window is None:
            hours = BY_NAME["window_hours"].read(values)
            window = timedelta(hours=hours)
        elif not isinstance(window, timedelta) or window < timedelta(seconds=1):
            raise ValueError(f"window must be a timedelta of at least one second, got {window!r}")
        auth_key = _auth_url_key(values, where)
        scope = BY_NAME["scope"].read(values)
        if scope is not None and not isinstance(scope, str):
            raise ValueError(f"extra 'scope' of {where} must be a comma-separated string, got {scope!r}")
        base_url = _api_base_url(host, port, where)
        token_where = f"extra {auth_key!r} of {where}"
        token_url = _http_url(values.get(auth_key) or DEFAULT_TOKEN_URL, token_where, DEFAULT_TOKEN_URL)
        if not BY_NAME["allow_insecure_http"].read(values):
            _refuse_cleartext(base_url, f"host field of {where}", where)
            _refuse_cleartext(token_url, token_where, where)
        return cls(
            base_url=base_url,
            token_url=token_url,
            client_id=login,
            client_secret=password,
            scope=scope or None,
            window=window,
            # Every other extra sets the field of its name.
            **{name: BY_NAME[name].read(values) for name in _SETTING_EXTRAS},
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry limits these settings describe."""
        return RetryPolicy(self.max_retries, self.max_retry_wait, self.max_retry_time)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or an error text."""
        return (self.client_secret, basic_credentials(self.client_id, self.client_secret))


#: The extras :meth:`Settings.from_connection` reads one by one (URLs, scope, window, cleartext).
_READ_APART = frozenset({"auth_url", "token_url", "scope", "allow_insecure_http", "window_hours"})
#: Every other extra sets the :class:`Settings` field of its own name.
_SETTING_EXTRAS = tuple(name for name in KNOWN_EXTRAS if name not in _READ_APART)


def _api_base_url(host: str | None, port: int | None, where: str) -> str:
    url = _http_url(host or DEFAULT_API_URL, f"host field of {where}")
    if port:
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))
    return url.rstrip("/")


def _auth_url_key(values: Mapping[str, Any], where: str) -> str:
    """
    :return: the extra that holds the token URL: ``auth_url``, or the deprecated ``token_url``.

    ``auth_url`` replaced ``token_url`` in 0.2.0 because Airflow's secrets masker hides every extra
    whose name contains "token", so the URL showed as ``***`` in the UI. ``auth_url`` wins when both
    are set.
    """
    if "token_url" in values and "auth_url" not in values:
        warnings.warn(
            f"extra 'token_url' of {where} is deprecated: rename it to 'auth_url' "
            "(Airflow's UI hides extras whose name contains 'token')",
            DeprecationWarning,
            stacklevel=3,
        )
        return "token_url"
    return "auth_url"


def _http_url(value: Any, what: str, example: str = DEFAULT_API_URL) -> str:
    if isinstance(value, str) and value.strip() and "://" not in value and not value.startswith("/"):
        # A bare host name such as "connect.routee.net": say which field to fix, and how.
        fixed = "https://" + value.strip()
        raise ValueError(
            f"{what} must be an http(s) URL with its scheme, got {value!r} (no scheme); set it to {fixed!r}"
        )
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL such as {example!r}, got {value!r}")
    return value


def _is_loopback(host: str) -> bool:
    """:return: whether ``host`` names this machine, decided from the text alone (no name lookup)."""
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always the loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_cleartext(url: str, what: str, where: str) -> None:
    """
    Refuse a plain ``http://`` URL to another machine.

    The application secret (token request) and the access token (API calls) would cross the network
    readable by anyone on the path.

    :raises ValueError: naming the field and both fixes.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return
    fixed = urlunsplit(parts._replace(scheme="https", netloc=parts.netloc.rpartition("@")[2]))
    raise ValueError(
        f"{what} uses plain http:// to {parts.hostname!r}, which is not a loopback address: the "
        f"application secret and access tokens would cross the network unencrypted; use {fixed!r}, "
        f"or set the extra allow_insecure_http: true on {where} if cleartext is really intended"
    )
