"""
The connection's extras, each declared once: name, type, default, label, description, validation.

This table drives :class:`~airflow_voicetrack.protocol.Settings` (which reads and validates them),
the warning about an unknown extra, and the connection form in ``get_provider_info``. A leaf: it
imports only :mod:`airflow_voicetrack.constants`, so that Airflow's providers manager can read the
form without importing the rest of the package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_voicetrack.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_TIME,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TOKEN_URL,
    DEFAULT_WINDOW_HOURS,
    MAX_PAGE_SIZE,
)


@dataclass(frozen=True)
class Extra:
    """
    One connection extra, declared once.

    The declaration drives :class:`Settings`, the unknown-extra warning (:func:`unknown_extras`)
    and the connection form (``get_provider_info``).

    :param name: the extra's name, also the hook's keyword argument where there is one.
    :param kind: ``url``, ``text``, ``number``, ``integer`` or ``boolean``.
    :param default: what an empty extra means (``None``: nothing).
    :param label: the connection form's label.
    :param description: the form's description, without the default (added from ``default``).
    :param minimum: the least value (numbers), inclusive unless ``positive``.
    :param maximum: the greatest value (integers), inclusive.
    :param positive: the value must be above 0.
    :param in_form: ``False`` for a deprecated name that the hook still reads.
    """

    name: str
    kind: Literal["url", "text", "number", "integer", "boolean"]
    default: Any
    label: str
    description: str
    minimum: float | None = None
    maximum: int | None = None
    positive: bool = False
    in_form: bool = True

    def read(self, values: Mapping[str, Any]) -> Any:
        """
        Read this extra from ``values`` (a hook argument or the extra), validated.

        :return: the value, or the default when it is not set.
        :raises ValueError: naming the extra and what it accepts.
        """
        if self.default is None and values.get(self.name) is None:
            return None  # optional, and not set
        if self.kind == "number":
            return number(values, self.name, self.default, minimum=self.minimum, positive=self.positive)
        if self.kind == "integer":
            assert self.minimum is not None
            return integer(values, self.name, self.default, minimum=int(self.minimum), maximum=self.maximum)
        if self.kind == "boolean":
            return boolean(values, self.name, self.default)
        return values.get(self.name, self.default)

    def shown_default(self) -> str:
        """:return: the default as the form's description shows it."""
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


#: Every connection extra a hook reads, in the connection form's order.
EXTRAS: tuple[Extra, ...] = (
    # Not "token_url": Airflow's secrets masker hides every extra whose name holds "token".
    Extra("auth_url", "url", DEFAULT_TOKEN_URL, "Token URL", "Full OAuth2 token URL."),
    Extra("token_url", "url", None, "Token URL", "Deprecated name of auth_url.", in_form=False),
    Extra("scope", "text", None, "Scope", "OAuth2 scope(s) to request, comma-separated."),
    Extra(
        "connect_timeout",
        "number",
        DEFAULT_CONNECT_TIMEOUT,
        "Connect timeout (s)",
        "Seconds to wait for a TCP/TLS connection.",
        positive=True,
    ),
    Extra(
        "read_timeout",
        "number",
        DEFAULT_READ_TIMEOUT,
        "Read timeout (s)",
        "Seconds to wait for a response.",
        positive=True,
    ),
    Extra(
        "request_deadline",
        "number",
        DEFAULT_REQUEST_DEADLINE,
        "Request deadline (s)",
        "Seconds one request may take in all, body included (the read timeout bounds each read only).",
        positive=True,
    ),
    Extra("verify_ssl", "boolean", True, "Verify TLS certificates", "Turn off only for test servers."),
    Extra(
        "allow_insecure_http",
        "boolean",
        False,
        "Allow plain http://",
        "Allow an http:// API or token URL on a host that is not a loopback address: the secret and "
        "the tokens would cross the network unencrypted.",
    ),
    Extra(
        "page_size",
        "integer",
        MAX_PAGE_SIZE,
        "Page size",
        f"Messages per search page, 1 to {MAX_PAGE_SIZE}.",
        minimum=1,
        maximum=MAX_PAGE_SIZE,
    ),
    Extra(
        "max_concurrency",
        "integer",
        DEFAULT_MAX_CONCURRENCY,
        "Concurrent requests",
        "The most requests in flight at once; the limiter adapts below it to the service's rate limit "
        "and latency.",
        minimum=1,
    ),
    Extra(
        "max_retries",
        "integer",
        DEFAULT_MAX_RETRIES,
        "Retries",
        "Retries of a transient failure (429, 5xx, network).",
        minimum=0,
    ),
    Extra(
        "max_retry_wait",
        "number",
        DEFAULT_MAX_RETRY_WAIT,
        "Longest single retry wait (s)",
        "Cap on one wait, including Retry-After.",
        minimum=0,
    ),
    Extra(
        "max_retry_time",
        "number",
        DEFAULT_MAX_RETRY_TIME,
        "Total retry time (s)",
        "Cap on the time one request spends retrying.",
        minimum=0,
    ),
    Extra(
        "window_hours",
        "number",
        DEFAULT_WINDOW_HOURS,
        "Search window (hours)",
        "A long range is searched in windows of this length.",
        positive=True,
    ),
    Extra(
        "max_requests_per_second",
        "number",
        None,
        "Requests per second",
        "A fixed request rate for this connection in each process (the limit of your contract, divided "
        "by the processes that share it); without it the limiter adapts.",
        positive=True,
    ),
)
BY_NAME = {extra.name: extra for extra in EXTRAS}
#: The connection extras a hook reads (the connection form lists the same, but ``token_url``).
KNOWN_EXTRAS: tuple[str, ...] = tuple(BY_NAME)


def number(
    values: Mapping[str, Any],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    """:return: ``values[name]`` (or ``default``) as a finite number within the bounds; else ValueError."""
    value = values.get(name, default)
    try:
        number = float(value)
        valid = not isinstance(value, bool) and math.isfinite(number)
    except (TypeError, ValueError):
        valid = False
    if valid and positive:
        valid = number > 0
    if valid and minimum is not None:
        valid = number >= minimum
    if not valid:
        bound = "> 0" if positive else f">= {minimum:g}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return number


def integer(
    values: Mapping[str, Any], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """:return: ``values[name]`` (or ``default``) as an integer within the bounds; else ValueError."""
    value = values.get(name, default)
    try:
        number = int(value)
        valid = not isinstance(value, (bool, float)) and minimum <= number <= (maximum or number)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return number


def boolean(values: Mapping[str, Any], name: str, default: bool) -> bool:
    """:return: ``values[name]`` (or ``default``): a bool, or true/false, 1/0, yes/no as text."""
    value = values.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{name} must be true or false, got {value!r}")
