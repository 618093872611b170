from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_voicetrack.protocol import KNOWN_EXTRAS, Settings, unknown_extras


def build(host="http://127.0.0.1:8099", port=None, login="app", password="secret", extra=None, **overrides):
    return Settings.from_connection(
        conn_id="vt",
        host=host,
        port=port,
        login=login,
        password=password,
        extra=extra or {},
        overrides=overrides,
    )


def test_defaults_follow_the_connection_contract():
    settings = build(host="")
    assert settings.base_url == "https://connect.routee.net"
    assert settings.token_url == "https://auth.routee.net/oauth/token"
    assert (settings.connect_timeout, settings.read_timeout, settings.verify_ssl) == (10, 60, True)
    assert (settings.page_size, settings.max_concurrency, settings.max_retries) == (2000, 8, 8)
    assert (settings.max_retry_wait, settings.window) == (60, timedelta(hours=24))


def test_extras_are_read():
    settings = build(
        extra={
            "auth_url": "http://127.0.0.1:8099/oauth/token",
            "scope": "a,b",
            "connect_timeout": 1.5,
            "read_timeout": "7",
            "verify_ssl": "false",
            "page_size": 100,
            "max_concurrency": 8,
            "max_retries": 0,
            "max_retry_wait": 0.1,
            "window_hours": 6,
        }
    )
    assert settings.token_url == "http://127.0.0.1:8099/oauth/token"
    assert (settings.scope, settings.connect_timeout, settings.read_timeout) == ("a,b", 1.5, 7.0)
    assert (settings.verify_ssl, settings.page_size, settings.max_concurrency) == (False, 100, 8)
    assert (settings.max_retries, settings.max_retry_wait, settings.window) == (0, 0.1, timedelta(hours=6))


def test_hook_arguments_win_over_extras():
    settings = build(extra={"page_size": 100, "window_hours": 6}, page_size=10, window=timedelta(hours=1))
    assert (settings.page_size, settings.window) == (10, timedelta(hours=1))


def test_port_replaces_the_port_of_host():
    assert build(host="http://127.0.0.1:1/", port=8099).base_url == "http://127.0.0.1:8099"


def test_secret_is_not_in_repr():
    assert "secret" not in repr(build(password="secret"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"login": ""}, "connection 'vt' has no login: set it to the Routee application id"),
        ({"password": None}, "connection 'vt' has no password: set it to the Routee application secret"),
        ({"host": "ftp://x"}, "host field of connection 'vt' must be an http\\(s\\) URL"),
        ({"host": "/api"}, "host field of connection 'vt' must be an http\\(s\\) URL such as"),
        ({"extra": {"auth_url": "auth"}}, "extra 'auth_url' of connection 'vt' must be an http\\(s\\) URL"),
        ({"extra": {"page_size": 5000}}, "page_size must be an integer from 1 to 2000, got 5000"),
        ({"page_size": 0}, "page_size must be an integer from 1 to 2000, got 0"),
        ({"extra": {"page_size": 1.5}}, "page_size must be an integer from 1 to 2000, got 1.5"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1, got 0"),
        ({"extra": {"connect_timeout": 0}}, "connect_timeout must be a number > 0, got 0"),
        ({"extra": {"read_timeout": "soon"}}, "read_timeout must be a number > 0, got 'soon'"),
        ({"extra": {"max_retries": -1}}, "max_retries must be an integer >= 0, got -1"),
        ({"extra": {"max_retry_wait": -1}}, "max_retry_wait must be a number >= 0, got -1"),
        ({"extra": {"verify_ssl": "maybe"}}, "verify_ssl must be true or false, got 'maybe'"),
        ({"extra": {"window_hours": 0}}, "window_hours must be a number > 0, got 0"),
        ({"window": timedelta(0)}, "window must be a timedelta of at least one second"),
        ({"extra": {"scope": ["a"]}}, "extra 'scope' of connection 'vt' must be a comma-separated string"),
    ],
)
def test_invalid_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


@pytest.mark.parametrize(
    ("host", "fixed"),
    [
        ("connect.routee.net", "https://connect.routee.net"),
        ("connect.routee.net/", "https://connect.routee.net/"),
        ("127.0.0.1:8099", "https://127.0.0.1:8099"),
    ],
)
def test_bare_host_without_scheme_names_the_host_field_and_shows_the_fix(host, fixed):
    with pytest.raises(ValueError) as info:
        build(host=host)
    message = str(info.value)
    assert message.startswith("host field of connection 'vt' must be an http(s) URL with its scheme")
    assert f"got {host!r} (no scheme)" in message
    assert message.endswith(f"set it to {fixed!r}")


def test_bare_auth_url_names_the_extra_and_shows_the_fix():
    with pytest.raises(
        ValueError,
        match=r"extra 'auth_url' of connection 'vt' .* set it to 'https://auth\.routee\.net/oauth/token'",
    ):
        build(extra={"auth_url": "auth.routee.net/oauth/token"})


def test_deprecated_token_url_is_still_read_with_a_warning():
    with pytest.warns(
        DeprecationWarning, match="extra 'token_url' of connection 'vt' is deprecated.*'auth_url'"
    ):
        settings = build(extra={"token_url": "http://127.0.0.1:9/oauth/token"})
    assert settings.token_url == "http://127.0.0.1:9/oauth/token"


def test_deprecated_token_url_errors_name_the_key_the_user_wrote():
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ValueError, match="extra 'token_url' of connection 'vt'"),
    ):
        build(extra={"token_url": "auth"})


def test_auth_url_wins_over_token_url_without_a_warning(recwarn):
    settings = build(extra={"auth_url": "http://127.0.0.1:1/a", "token_url": "http://127.0.0.1:2/t"})
    assert settings.token_url == "http://127.0.0.1:1/a"
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_empty_auth_url_means_the_default():
    # The form stores an untouched field as null: the default applies, not a stale token_url.
    assert build(extra={"auth_url": None}).token_url == "https://auth.routee.net/oauth/token"


# --- transport security ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": "http://connect.routee.net"}, "host field of connection 'vt'"),
        ({"host": "http://10.1.2.3:8080/api"}, "host field of connection 'vt'"),
        ({"host": "http://127.example.com"}, "host field of connection 'vt'"),
        (
            {"extra": {"auth_url": "http://auth.routee.net/oauth/token"}},
            "extra 'auth_url' of connection 'vt'",
        ),
    ],
)
def test_plain_http_to_a_remote_host_is_refused_naming_the_field_and_the_fix(kwargs, field):
    with pytest.raises(ValueError) as info:
        build(**kwargs)
    text = str(info.value)
    assert text.startswith(f"{field} uses plain http:// to ")
    assert "'https://" in text and "allow_insecure_http: true" in text


def test_the_refusal_holds_no_credentials_of_the_url():
    with pytest.raises(ValueError) as info:
        build(host="http://user:hunter2@connect.routee.net")
    assert "hunter2" not in str(info.value) and "'https://connect.routee.net'" in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8099", "http://127.9.9.9", "http://[::1]:8099", "http://localhost:8099"]
)
def test_plain_http_to_a_loopback_address_is_accepted(url):
    settings = build(host=url, extra={"auth_url": url + "/oauth/token"})
    assert (settings.base_url, settings.token_url) == (url, url + "/oauth/token")


@pytest.mark.parametrize("flag", [True, "true"])
def test_allow_insecure_http_accepts_plain_http_to_a_remote_host(flag):
    settings = build(
        host="http://10.1.2.3:8080",
        extra={"auth_url": "http://10.1.2.3:8080/oauth/token", "allow_insecure_http": flag},
    )
    assert settings.base_url == "http://10.1.2.3:8080"


def test_request_deadline_is_read_and_validated():
    assert build().request_deadline == 300
    assert build(extra={"request_deadline": "2.5"}).request_deadline == 2.5
    with pytest.raises(ValueError, match="request_deadline must be a number > 0, got 0"):
        build(extra={"request_deadline": 0})


def test_unknown_extras_name_the_likely_typo():
    problems = unknown_extras({"read_timout": 5, "page_size": 10, "colour": "red"}, "vt")
    assert problems[0].startswith("connection 'vt' has an unknown extra 'colour', which is ignored; known")
    assert problems[1].endswith("unknown extra 'read_timout', which is ignored; did you mean 'read_timeout'?")
    assert unknown_extras({name: None for name in KNOWN_EXTRAS}, "vt") == []


def test_max_requests_per_second_is_optional_and_must_be_positive():
    assert build().max_requests_per_second is None
    assert build(extra={"max_requests_per_second": "6.5"}).max_requests_per_second == 6.5
    for bad in (0, -1, "fast"):
        with pytest.raises(ValueError, match="max_requests_per_second must be a number > 0"):
            build(extra={"max_requests_per_second": bad})
