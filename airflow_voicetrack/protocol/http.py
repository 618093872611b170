"""One HTTP request and its response, independent of the library (``requests``, ``httpx``) that sends it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    """One HTTP request, independent of the library that sends it."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: the token endpoint is called with Basic credentials, every other request with the token
    needs_token: bool = True

    @property
    def label(self) -> str:
        """``METHOD path`` for messages: never the query string, never a header."""
        return f"{self.method} {urlsplit(self.url).path}"

    def arguments(self, token: str | None = None) -> dict[str, Any]:
        """
        The keyword arguments of ``requests``' and ``httpx``'s ``request()`` that send this request.

        :param token: the access token, sent as ``Authorization: Bearer``.
        """
        headers = dict(self.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return {
            "method": self.method,
            "url": self.url,
            "params": self.params or None,
            "json": self.json,
            "data": self.data,
            "headers": headers,
        }


@dataclass(frozen=True)
class Response:
    """
    What a transport received.

    :param headers: a case-insensitive mapping (``requests`` and ``httpx`` both give one).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
