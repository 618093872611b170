"""Typed errors raised by the voice tracking hooks.

Every error subclasses :class:`VoiceTrackError` (an ``AirflowException``), so a task fails with a
readable message, and callers can still tell the kinds apart without matching strings. No error
text ever contains the application secret, an access token or an ``Authorization`` header.
"""

from __future__ import annotations

from typing import Any, Literal

from airflow.sdk.exceptions import AirflowException


class VoiceTrackError(AirflowException):
    """Base class of every error raised by this provider's hooks."""


class VoiceTrackAPIError(VoiceTrackError):
    """
    The API answered with an error that retrying does not fix (400, 404, 409, ...).

    :param status_code: HTTP status of the response.
    :param code: the API's 9-digit error ``code`` (empty when the body had none).
    :param developer_message: the API's ``developerMessage`` (empty when the body had none).
    :param properties: the API's ``properties``, e.g. the invalid fields of a validation error.
    :param context: what the client was doing, e.g. ``"POST /voice/tracking"``.
    """

    def __init__(
        self,
        status_code: int,
        code: str = "",
        developer_message: str = "",
        properties: dict[str, Any] | None = None,
        context: str = "",
    ) -> None:
        # AirflowException declares status_code as an HTTPStatus class attribute for its API server
        self.status_code = status_code  # type: ignore[assignment]
        self.code = code
        self.developer_message = developer_message
        self.properties = dict(properties or {})
        self.context = context
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"HTTP {self.status_code}"
        if self.context:
            text = f"{self.context}: {text}"
        if self.code:
            text += f" code {self.code}"
        if self.developer_message:
            text += f": {self.developer_message}"
        if self.properties:
            text += f" {self.properties}"
        return text


class VoiceTrackAuthError(VoiceTrackAPIError):
    """
    Authentication failed even after getting a fresh token.

    :param reason: ``"credentials"`` when the application id/secret or the token were rejected
        (HTTP 401), ``"permissions"`` when the application may not use the endpoint (HTTP 403).
    """

    def __init__(
        self,
        status_code: int,
        code: str = "",
        developer_message: str = "",
        properties: dict[str, Any] | None = None,
        context: str = "",
        *,
        reason: Literal["credentials", "permissions"],
    ) -> None:
        self.reason = reason
        super().__init__(status_code, code, developer_message, properties, context)

    def _describe(self) -> str:
        hint = (
            "check the connection's application id (login) and secret (password)"
            if self.reason == "credentials"
            else "the application lacks the permission for this endpoint; check its scopes/permissions"
        )
        return f"authentication failed ({self.reason}): {super()._describe()}; {hint}"


class VoiceTrackNotFoundError(VoiceTrackAPIError):
    """The requested message, conversation or campaign does not exist (HTTP 404)."""


class VoiceTrackTransientError(VoiceTrackError):
    """
    A transient failure (429, 5xx, network error, timeout) persisted after all retries.

    :param retry_after: the wait in seconds the server asked for with ``Retry-After`` (as sent, not
        capped by ``max_retry_wait``) when the last failure was a retryable status such as 429 or
        503 carrying that header; ``None`` otherwise. Callers that try again later (e.g. the
        trigger) should wait at least this long.
    """

    def __init__(self, *args: Any, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(*args)


class VoiceTrackConnectionError(VoiceTrackTransientError):
    """
    The host could not be used at all: unreachable after all retries, or its TLS failed.

    TLS failures are raised at once: retrying does not fix a certificate.

    :param kind: ``"unreachable"`` or ``"tls"``.
    """

    def __init__(self, message: str, *, kind: Literal["unreachable", "tls"]) -> None:
        self.kind = kind
        super().__init__(message)


class VoiceTrackResponseError(VoiceTrackError):
    """The API kept sending a malformed body or a page envelope that contradicts itself."""


class VoiceTrackConsistencyError(VoiceTrackError):
    """A strict search found a different number of messages than the API's ``totalElements``."""


class VoiceTrackDateFilterError(VoiceTrackError):
    """
    A search returned a message whose status changed before the searched window began.

    A call cannot change status before it exists, so the service did not apply the date range: it
    most likely ignored the date parameters (a service ignores query parameters it does not know,
    with no error), and the search is returning the account's whole history. Nothing is written.

    :param message_id: the message found.
    :param status_date: its ``status.date``, as the API sent it.
    :param window_start: the searched window's start (``from``), as sent.
    :param context: the window, e.g. ``"window [2026-11-01T00:00:00Z, 2026-11-02T00:00:00Z)"``.
    """

    def __init__(self, message_id: str, status_date: str, window_start: str, context: str = "") -> None:
        self.message_id = message_id
        self.status_date = status_date
        self.window_start = window_start
        where = f"{context}: " if context else ""
        super().__init__(
            f"{where}message {message_id} has status.date {status_date}, before the searched window's "
            f"start {window_start}: the service did not apply the date range (most likely it ignored the "
            "date parameters 'from'/'to', e.g. because it names them differently), so this search would "
            "return the account's whole history; nothing was written. Run "
            "'python -m airflow_voicetrack.probe --conn-id <your connection>' to see which parameter "
            "names the service honours."
        )


def describe_failure(exc: VoiceTrackError) -> str:
    """
    Say in a line what failed, for a connection test: what the user fixes comes first.

    :return: e.g. ``"Credentials rejected: ..."``, ``"TLS failed: ..."``, ``"Request failed: ..."``.
    """
    if isinstance(exc, VoiceTrackAuthError):
        what = "Credentials rejected" if exc.reason == "credentials" else "Permission denied"
        return f"{what}: {exc}"
    if isinstance(exc, VoiceTrackConnectionError):
        what = "TLS failed" if exc.kind == "tls" else "Host unreachable"
        return f"{what}: {exc}"
    return f"Request failed: {exc}"
