"""What both transports say about a failed request: the deadline's text, TLS failures."""

from __future__ import annotations

import ssl
from collections.abc import Iterator


def deadline_text(seconds: float) -> str:
    """The failure text of a request that hit ``request_deadline``."""
    return f"no complete response within request_deadline={seconds:g} s"


def is_tls_error(exc: BaseException) -> bool:
    """:return: whether ``exc`` comes from TLS (a certificate or handshake problem)."""
    return any(isinstance(e, ssl.SSLError) for e in error_chain(exc))


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc``, its causes, and the reasons/arguments libraries wrap their errors in."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(e for e in (item.__cause__, item.__context__, getattr(item, "reason", None)) if e)
        todo.extend(arg for arg in item.args if isinstance(arg, BaseException))
