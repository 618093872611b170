"""Run the emulator as a subprocess: for tests, benchmarks, the demo and users' own DAG tests.

Standard library only, so importing it is cheap and needs neither Airflow nor the server stack.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from airflow_voicetrack.emulator import SERVING_PREFIX


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EmulatorProcess:
    """The emulator in a child process on a free port of 127.0.0.1.

    Use as a context manager (or call :meth:`start` and :meth:`stop`)::

        with EmulatorProcess(messages=10_000, settle_seconds=0) as emu:
            os.environ["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emu.connection_json()

    :param messages: number of initial messages.
    :param seed: data set seed.
    :param settle_seconds: seconds over which statuses reach their final value.
    :param arrival_rate: new messages per second while running.
    :param settle_lag: ``(min, max)``: each message is final between min and max seconds after its
        creation (``--settle-lag``), instead of ``settle_seconds``.
    :param start: ISO start of the initial messages' creation times (``None``: the CLI default).
    :param end: ISO end, exclusive (``None``: the CLI default).
    :param client_id: application id the emulator accepts.
    :param client_secret: application secret the emulator accepts.
    :param lenient_params: ignore query parameters an endpoint does not have (``--lenient-params``)
        instead of a 400 naming them.
    :param date_params: the names of the search's date range (``--date-params``), e.g.
        ``("dateStart", "dateEnd")`` to play a service with the other spelling; ``None``: ours.
    :param request_log: keep the last this many API and token exchanges for :meth:`requests`
        (``--request-log``; 0: no log).
    :param extra_args: further CLI arguments, e.g. ``["--latency-ms", "5"]``.
    :param startup_timeout: seconds to wait for the "serving on" line.
    :param log_level: the emulator's log level.
    """

    def __init__(
        self,
        messages: int = 10_000,
        seed: int = 1,
        settle_seconds: float = 0,
        arrival_rate: float = 0,
        *,
        settle_lag: tuple[float, float] | None = None,
        start: str | None = None,
        end: str | None = None,
        client_id: str = "demo-app-id",
        client_secret: str = "demo-app-secret",
        lenient_params: bool = False,
        date_params: tuple[str, str] | None = None,
        request_log: int = 0,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
        log_level: str = "warning",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.startup_timeout = startup_timeout
        self.args = [
            "--port",
            "0",
            "--messages",
            str(messages),
            "--seed",
            str(seed),
            "--settle-seconds",
            str(settle_seconds),
            "--arrival-rate",
            str(arrival_rate),
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--log-level",
            log_level,
            *(["--settle-lag", f"{settle_lag[0]}:{settle_lag[1]}"] if settle_lag else []),
            *(["--start", start] if start else []),
            *(["--end", end] if end else []),
            *(["--lenient-params"] if lenient_params else []),
            *(["--date-params", ",".join(date_params)] if date_params else []),
            *(["--request-log", str(request_log)] if request_log else []),
            *extra_args,
        ]
        self.url = ""
        #: seconds from spawning the process to its "serving on" line
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmulatorProcess:
        """Spawn the emulator and wait (bounded) until it serves.

        :raises RuntimeError: when it exits or does not serve within ``startup_timeout``.
        """
        began = time.monotonic()
        self._proc = subprocess.Popen(
            # --parent-pid: the emulator stops by itself if this process dies without stopping it.
            [
                sys.executable,
                "-m",
                "airflow_voicetrack.emulator",
                *self.args,
                "--parent-pid",
                str(os.getpid()),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read_output, name="voicetrack-emulator-output", daemon=True).start()
        if not self._ready.wait(self.startup_timeout) or not self.url:
            output = "\n".join(self._output)
            self.stop()
            raise RuntimeError(f"VoiceTrack emulator did not start within {self.startup_timeout}s:\n{output}")
        self.startup_seconds = time.monotonic() - began
        return self

    def _read_output(self) -> None:
        # Reads until the process exits, so a chatty emulator never blocks on a full pipe.
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if not self.url and line.startswith(SERVING_PREFIX):
                # The URL is the first word; the credentials and data range follow it.
                self.url = line[len(SERVING_PREFIX) :].split()[0]
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the emulator; kill it if it has not exited within ``timeout`` seconds.

        :param timeout: seconds to wait after terminating.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def output(self) -> list[str]:
        """The last lines the emulator printed (for diagnostics)."""
        return list(self._output)

    @property
    def pid(self) -> int | None:
        """The emulator's process id while it runs."""
        return self._proc.pid if self._proc else None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- connection ----------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        """The token endpoint: ``{url}/oauth/token``."""
        return self.url + "/oauth/token"

    def connection_json(self, **extra: Any) -> str:
        """An Airflow connection in JSON form (for ``AIRFLOW_CONN_*``) pointing at this emulator.

        :param extra: further connection extras (``page_size=500``, ...).
        """
        return json.dumps(
            {
                "conn_type": "voicetrack",
                "login": self.client_id,
                "password": self.client_secret,
                "host": self.url,
                "extra": {"auth_url": self.token_url, **extra},
            }
        )

    def connection_uri(self, **extra: Any) -> str:
        """An Airflow connection URI pointing at this emulator, for ``AIRFLOW_CONN_*``.

        It uses Airflow's ``conn_type://protocol://login:password@host/?extras`` form, with the
        port inside the (percent-encoded) host, as ``Connection.get_uri()`` writes it, so that
        ``Connection(uri=...)`` reads ``host="http://127.0.0.1:PORT"`` (the scheme the hook needs)
        and no separate port, e.g.
        ``voicetrack://http://demo-app-id:demo-app-secret@127.0.0.1%3A8099/?auth_url=...``.

        :param extra: further connection extras.
        """
        parsed = urllib.parse.urlsplit(self.url)
        query = urllib.parse.urlencode({"auth_url": self.token_url, **extra})
        login = urllib.parse.quote(self.client_id, safe="")
        password = urllib.parse.quote(self.client_secret, safe="")
        host = urllib.parse.quote(parsed.netloc, safe="")
        return f"voicetrack://{parsed.scheme}://{login}:{password}@{host}/?{query}"

    # -- admin calls ---------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = f"{self.url}/_emulator/{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def truth(
        self,
        date_start: datetime | str | None = None,
        date_end: datetime | str | None = None,
        filters: Sequence[dict[str, Any]] | None = None,
        campaign_tracking_id: str | None = None,
        tagged: bool | None = None,
    ) -> list[dict]:
        """Every message a search matches right now, in messageId order.

        :param date_start: inclusive start (aware datetime or ISO string).
        :param date_end: exclusive end.
        :param filters: filter dicts as the API takes them.
        :param campaign_tracking_id: the campaign's tracking id.
        :param tagged: only messages with (``True``) or without (``False``) a campaign.
        """
        # The search's own parameter names (see airflow_voicetrack.constants.SEARCH_PARAMS), which the
        # truth endpoint always takes.
        query = {
            "from": _iso(date_start) if date_start is not None else None,
            "to": _iso(date_end) if date_end is not None else None,
            "trackingId": campaign_tracking_id,
            "tagged": None if tagged is None else str(tagged).lower(),
        }
        return self._admin("POST", "truth", list(filters or []), query)["content"]

    def truth_ids(
        self,
        date_start: datetime | str | None = None,
        date_end: datetime | str | None = None,
    ) -> list[str]:
        """
        Return the ``messageId`` of every message created in the range right now, sorted.

        :meth:`truth` without the messages' content, for checking millions of them.

        :param date_start: inclusive start (aware datetime or ISO string).
        :param date_end: exclusive end.
        """
        query = {
            "from": _iso(date_start) if date_start is not None else None,
            "to": _iso(date_end) if date_end is not None else None,
            "idsOnly": "true",
        }
        return self._admin("POST", "truth", [], query)["messageIds"]

    def stats(self) -> dict:
        """Requests served per route, their total, the tokens issued and the most searches at once."""
        return self._admin("GET", "stats")

    def search_spans(self) -> list[tuple[float, float]]:
        """Each search request since the last stats reset: ``(start, end)`` on the emulator's clock."""
        return [(start, end) for start, end in self._admin("GET", "spans")["spans"]]

    def requests(self) -> list[dict[str, Any]]:
        """
        Each API and token exchange since the last stats reset, oldest first (secrets redacted).

        Every entry has ``method``, ``path``, ``raw_path``, ``query_string``, ``headers`` (without
        ``Authorization``), ``auth_scheme`` (``"Bearer"``, ``"Basic"`` or ``None``), ``body``,
        ``status`` (``None``: the connection was dropped), ``response_headers`` and
        ``response_body`` (``None`` with ``*_truncated`` for a body over 1 MiB).

        :raises RuntimeError: when the emulator was started without ``request_log``.
        """
        try:
            return list(self._admin("GET", "requests")["requests"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise RuntimeError("the emulator keeps no request log: start it with request_log=N") from None
            raise

    def refused_at(self) -> list[float]:
        """When each 429 since the last stats reset was sent, on the emulator's clock."""
        return list(self._admin("GET", "spans")["refused_at"])

    def reset_stats(self) -> None:
        """Zero the request and token counters (and empty the request log)."""
        self._admin("POST", "stats/reset")

    def faults(self) -> dict:
        """The current fault settings."""
        return self._admin("GET", "faults")

    def set_faults(self, **settings: Any) -> dict:
        """Merge fault settings (CLI flag names with ``_``) into the current ones.

        :param settings: e.g. ``unauthorized_rate=0.5, retry_after_mode="date"``.
        """
        return self._admin("PUT", "faults", settings)

    def clear_faults(self) -> None:
        """Turn every fault off."""
        self._admin("DELETE", "faults")

    def reset(self) -> None:
        """Start again: wall clock running, statuses progressing anew, no stats, faults or arrivals."""
        self._admin("POST", "reset")

    def clock(self) -> dict:
        """The emulator's time: ``{"now": epoch seconds, "frozen": bool, "tick": seconds}``."""
        return self._admin("GET", "clock")

    def freeze_clock(self, tick: float = 0.0) -> float:
        """Stop the emulator's clock (statuses, token expiry, arrivals); returns the frozen time.

        :param tick: seconds the frozen clock steps after each API request (0 = it stands still).
        """
        return float(self._admin("POST", "clock", {"freeze": True, "tick": tick})["now"])

    def advance_clock(self, seconds: float) -> float:
        """Step the emulator's clock forward, frozen or not; returns the new time.

        :param seconds: how far, >= 0.
        """
        return float(self._admin("POST", "clock", {"advance": seconds})["now"])

    def resume_clock(self) -> None:
        """Let the emulator's clock run again from where it stands."""
        self._admin("POST", "clock", {"resume": True})

    def add_messages(self, n: int, created_at: datetime | str | None = None) -> list[str]:
        """Add ``n`` messages created now (or at ``created_at``); returns their messageIds.

        :param n: how many.
        :param created_at: their creation time.
        """
        body: dict[str, Any] = {"count": n}
        if created_at is not None:
            body["created_at"] = _iso(created_at)
        return self._admin("POST", "messages", body)["messageIds"]
