"""Transport security of both hooks: no cleartext to remote hosts, a certificate no authority signed
refused, one warning when TLS is not verified, and no credentials on a redirect to another host."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.emulator import END, FAST_RETRIES, START, api_requests
from support.tcp_proxy import FaultProxy
from support.tls import self_signed_server_context

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.exceptions import VoiceTrackConnectionError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook, VoiceTrackHook

#: Host names under ``.invalid`` never resolve (RFC 6761): a lookup would be a bug, not a result.
REMOTE_API = "http://voicetrack.invalid"
REMOTE_AUTH = "http://auth.voicetrack.invalid/oauth/token"


def use_connection(monkeypatch: pytest.MonkeyPatch, conn: dict) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))


def count_sync() -> int:
    return VoiceTrackHook().count_messages(START, END)


def count_async() -> int:
    async def count() -> int:
        hook = VoiceTrackAsyncHook()
        try:
            return await hook.count_messages(START, END)
        finally:
            await hook.close()

    return asyncio.run(count())


COUNTERS = {"sync": count_sync, "async": count_async}


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved from now on (the lookups still happen)."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


@pytest.mark.parametrize("hook", list(COUNTERS))
@pytest.mark.parametrize(
    ("where", "field"),
    [("host", "host field"), ("auth_url", "extra 'auth_url'")],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_lookup_or_request(
    emu: EmulatorProcess, monkeypatch, lookups, hook, where, field
):
    conn = json.loads(emu.connection_json(**FAST_RETRIES))
    if where == "host":
        conn["host"] = REMOTE_API
    else:
        conn["extra"]["auth_url"] = REMOTE_AUTH
    use_connection(monkeypatch, conn)
    with pytest.raises(ValueError) as info:
        COUNTERS[hook]()
    text = str(info.value)
    assert text.startswith(f"{field} of connection 'voicetrack_default' uses plain http:// to ")
    assert "'https://" in text and "allow_insecure_http: true" in text
    assert [host for host in lookups if "invalid" in host] == []
    assert api_requests(emu) == 0


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_plain_http_on_loopback_works(emu: EmulatorProcess, hook):
    assert emu.url.startswith("http://127.0.0.1:")
    assert COUNTERS[hook]() == len(emu.truth(START, END))


def warnings_about_verify_ssl(logs: list[dict]) -> list[str]:
    """:return: the warnings about ``verify_ssl`` among log entries captured by structlog."""
    texts = [e["event"] % e.get("positional_args", ()) for e in logs if e["log_level"] == "warning"]
    return [text for text in texts if "verify_ssl" in text]


def three_calls(hook: str) -> None:
    """Two counts and a one-message search with one hook (``sync`` or ``async``)."""
    if hook == "sync":
        sync_hook = VoiceTrackHook()
        sync_hook.count_messages(START, END)
        sync_hook.count_messages(START, END)
        list(sync_hook.search_messages(START, END, limit=1))
        return

    async def calls() -> None:
        async_hook = VoiceTrackAsyncHook()
        try:
            await async_hook.count_messages(START, END)
            await async_hook.count_messages(START, END)
            [_ async for _ in async_hook.search_messages(START, END, limit=1)]
        finally:
            await async_hook.close()

    asyncio.run(calls())


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_verify_ssl_off_is_warned_once_per_hook(emu: EmulatorProcess, monkeypatch, hook):
    use_connection(monkeypatch, json.loads(emu.connection_json(verify_ssl=False)))
    with capture_logs() as logs:
        three_calls(hook)
    [warning] = warnings_about_verify_ssl(logs)
    assert "'voicetrack_default'" in warning and "not verified" in warning


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_verify_ssl_on_is_not_warned(emu: EmulatorProcess, hook):
    with capture_logs() as logs:
        three_calls(hook)
    assert warnings_about_verify_ssl(logs) == []
    assert any("search done" in entry["event"] for entry in logs), "nothing was captured: the check is void"


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_basic_header_of_the_token_request_does_not_follow_a_redirect_to_another_host(
    emu: EmulatorProcess, redirector, monkeypatch, hook
):
    """The token request is redirected to ``localhost`` (another host name): its Basic header stays behind."""
    conn = json.loads(emu.connection_json(**FAST_RETRIES))
    conn["host"] = redirector.url
    conn["extra"]["auth_url"] = redirector.url + "/oauth/token"
    use_connection(monkeypatch, conn)
    if hook == "sync":
        assert VoiceTrackHook().get_message("m1") == {"messageId": "landed"}
    else:

        async def fetch() -> dict:
            async_hook = VoiceTrackAsyncHook()
            try:
                return await async_hook.get_message("m1")
            finally:
                await async_hook.close()

        assert asyncio.run(fetch()) == {"messageId": "landed"}
    by_path = dict(redirector.seen)
    assert by_path["/oauth/token"] is not None and by_path["/oauth/token"].startswith("Basic ")
    assert "/landed/oauth/token" in by_path and by_path["/landed/oauth/token"] is None
    # The API call carried the token the redirected request obtained, and lost it on its own redirect.
    assert by_path["/voice/tracking/m1"] == "Bearer landed-token"
    assert by_path["/landed/voice/tracking/m1"] is None


@pytest.fixture
def tls_proxy(emu: EmulatorProcess, tmp_path: Path) -> Iterator[FaultProxy]:
    """The emulator behind HTTPS on 127.0.0.1, with a certificate that no authority signed."""
    with FaultProxy(emu.url, tls=self_signed_server_context(tmp_path)) as proxy:
        yield proxy


def connect_over_tls(
    monkeypatch: pytest.MonkeyPatch, emu: EmulatorProcess, proxy: FaultProxy, **extras
) -> None:
    """Point ``voicetrack_default`` (API and token URL) at the HTTPS proxy."""
    conn = json.loads(emu.connection_json(**{**FAST_RETRIES, **extras}))
    conn["host"] = proxy.url
    for key, value in conn["extra"].items():  # the token URL
        if isinstance(value, str) and value.startswith(emu.url):
            conn["extra"][key] = proxy.url + value[len(emu.url) :]
    use_connection(monkeypatch, conn)


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_a_certificate_no_authority_signed_fails_at_once_as_a_tls_error(
    emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tls_proxy: FaultProxy, hook: str
) -> None:
    connect_over_tls(monkeypatch, emu, tls_proxy)
    with pytest.raises(VoiceTrackConnectionError) as info:
        COUNTERS[hook]()
    assert info.value.kind == "tls", str(info.value)
    assert "certificate" in str(info.value).lower(), str(info.value)
    assert "giving up" not in str(info.value), "a certificate problem is not retried"
    assert tls_proxy.requests == 0  # not one API request got through


@pytest.mark.parametrize("hook", list(COUNTERS))
def test_verify_ssl_off_over_tls_reads_the_same_with_one_warning_per_hook(
    emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tls_proxy: FaultProxy, hook: str
) -> None:
    # With REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE set (as on this machine), requests used to verify
    # anyway: a session's verify=False loses to them, a request's does not.
    truth = COUNTERS[hook]()  # over plain http to the emulator itself
    connect_over_tls(monkeypatch, emu, tls_proxy, verify_ssl=False)
    assert COUNTERS[hook]() == truth
    with capture_logs() as logs:
        three_calls(hook)
    assert tls_proxy.requests >= 4  # the count and the three calls went through TLS
    [warning] = warnings_about_verify_ssl(logs)
    assert "not verified" in warning
