"""
``make airflow``: the example DAGs running in Airflow's own web UI against a live API emulator.

Starts, all on 127.0.0.1 and stopped again on Ctrl-C or SIGTERM:

- the emulator, with ``--days`` days of calls up to now, new calls arriving all the time, each one
  in progress for a while before it reaches its final status;
- Airflow's API server (the UI), scheduler (LocalExecutor), DAG processor and triggerer, with their
  home in ``.airflow/ui-home`` (SQLite, kept between runs), the ``voicetrack_default`` connection
  pointing at the emulator (an environment variable), and the example DAGs unpaused.

Then it triggers what makes the UI worth a look: a backfill of the daily extraction over the
previous days (the scheduler runs the latest day itself), one run of the gate DAG on a campaign's
calls of the last hour (its sensor waits deferred in the triggerer until they have finished), and
one run of the backfill fan-out over the whole range (one mapped task per window). The event-driven
DAG needs no trigger: its Asset watcher announces each 5-minute window of the last hour whose calls
have all finished, and then each new one, and the scheduler starts a run for them. It prints the
URL and the login every time, then one line as each of these reaches the UI, with the seconds
since start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import httpx

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from example_dags.demo import REPO, DemoError, migrate_once, say

HOME = REPO / ".airflow" / "ui-home"
OUTPUT = REPO / ".airflow" / "ui-output"
DEFAULT_PORT = 8080
USER = "admin"
EXTRACT, GATE, BACKFILL, ON_CALLS = (
    "example_voicetrack_extract",
    "example_voicetrack_gate",
    "example_voicetrack_backfill",
    "example_voicetrack_on_calls_finished",
)
DAG_IDS = (EXTRACT, GATE, BACKFILL, ON_CALLS)
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Emulator: calls per day of history, new calls per second, and the seconds after its creation
#: within which a call finishes (so the past is final and the last minutes are in progress).
CALLS_PER_DAY = 5_000
ARRIVALS_PER_SECOND = 0.5
SETTLE_LAG = (60.0, 240.0)
#: The gate DAG waits for one campaign's calls of this last stretch before start.
GATE_LOOKBACK = timedelta(hours=1)
BACKFILL_WINDOW_HOURS = 12
#: The event-driven DAG's watcher: 5-minute creation windows, polled every 30 s, from an hour back
#: (so the first runs appear at once; then one every 5 minutes, once a window's calls have finished).
WATCH_WINDOW = timedelta(minutes=5)
WATCH_POLL_SECONDS = 30
STARTUP_TIMEOUT_S = 300
API_ATTEMPTS = 5
T = TypeVar("T")


class Stop(Exception):
    """SIGTERM arrived: stop everything, as on Ctrl-C."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, every: float = 1.0) -> T:
    """
    Call ``condition`` until it returns something truthy, and return that.

    :param condition: the check; an exception counts as "not yet".
    :param timeout: seconds to wait at most.
    :param what: what is awaited, for the error.
    :param every: seconds between checks.
    :raises DemoError: after ``timeout`` seconds, naming ``what`` and the last error.
    """
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except (httpx.HTTPError, OSError, KeyError) as exc:
            error = exc
        time.sleep(every)
    raise DemoError(f"Timed out after {timeout:.0f} s waiting for {what} (last error: {error!r})")


def admin_password(home: Path) -> str:
    """
    The UI password of :data:`USER`, created once and kept in Airflow's own passwords file.

    Airflow's simple auth manager reads this file; writing it first means the password is known
    here, so it can be printed on every start, not only the first.
    """
    path = home / "simple_auth_manager_passwords.json.generated"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    if USER not in passwords:
        passwords[USER] = secrets.token_urlsafe(12)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return str(passwords[USER])


class AirflowUI:
    """
    The emulator and the four Airflow services of one home, started, watched and stopped together.

    :param home: the ``AIRFLOW_HOME`` (SQLite, service output under ``logs/``).
    :param output: the directory the example DAGs write to.
    :param port: the UI's port on 127.0.0.1 (0: any free port).
    :param days: days of calls before now in the emulator.
    """

    def __init__(self, home: Path, output: Path, port: int, days: int) -> None:
        self.home = home
        self.output = output
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.days = days
        self.started = time.monotonic()
        #: where the event-driven DAG's watcher starts (set with the emulator's range in start())
        self.watch_start = datetime.now(timezone.utc)
        self.emulator: EmulatorProcess | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._token = ""
        self._password = ""
        #: What was reported already (each milestone is printed once).
        self.reported: set[str] = set()

    def elapsed(self) -> float:
        """Seconds since this object was created (the start of ``make airflow``)."""
        return time.monotonic() - self.started

    def environment(self, emulator: EmulatorProcess) -> dict[str, str]:
        """The environment of every Airflow process: this one's minus any Airflow setting, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VOICETRACK_OUTPUT"))}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            # Workers reach the database only through the API server's execution API, and every
            # process must sign and check the same JWTs. New secrets each start: nothing to keep.
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(32),
            # Free ports: another Airflow on this machine must not collide with this one.
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            AIRFLOW_CONN_VOICETRACK_DEFAULT=emulator.connection_json(),
            VOICETRACK_OUTPUT_BASE=self.output.as_uri(),
            VOICETRACK_WATCH_WINDOW_SECONDS=str(int(WATCH_WINDOW.total_seconds())),
            VOICETRACK_WATCH_POLL_INTERVAL=str(WATCH_POLL_SECONDS),
            VOICETRACK_WATCH_START=_z(self.watch_start),
        )
        return env

    # -- start -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the emulator and Airflow, wait until the DAGs are there, unpause and trigger them."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self.output.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        first_day = (now - timedelta(days=self.days)).replace(hour=0, minute=0, second=0)
        hours = (now - first_day).total_seconds() / 3600
        step = int(WATCH_WINDOW.total_seconds())
        self.watch_start = datetime.fromtimestamp(
            int((now - GATE_LOOKBACK).timestamp()) // step * step, timezone.utc
        )
        self.emulator = EmulatorProcess(
            messages=int(CALLS_PER_DAY * hours / 24),
            settle_lag=SETTLE_LAG,
            arrival_rate=ARRIVALS_PER_SECOND,
            start=f"{first_day:%Y-%m-%dT%H:%M:%SZ}",
            end=f"{now:%Y-%m-%dT%H:%M:%SZ}",
        ).start()
        say(f"Emulator serving on {self.emulator.url}: calls from {first_day:%Y-%m-%d %H:%M} UTC to now,")
        per_minute, (low, high) = ARRIVALS_PER_SECOND * 60, SETTLE_LAG
        say(f"  {per_minute:.0f} new calls a minute, each finishing {low:.0f}-{high:.0f} s after it began.")
        env = self.environment(self.emulator)
        self._password = admin_password(self.home)
        migrate_once(env, self.home, self.home / "logs" / "migrate.log")
        say(f"Starting Airflow (home {self.home}) ...")
        # The API server first: a task the scheduler starts before the execution API answers fails.
        self._spawn("api-server", env)
        wait_for(self._api_healthy, STARTUP_TIMEOUT_S, "the Airflow API server to answer")
        for service in SERVICES[1:]:
            self._spawn(service, env)
        self._token = self._login()
        wait_for(self._dags_parsed, STARTUP_TIMEOUT_S, "the example DAGs to be parsed", every=2)
        for dag_id in DAG_IDS:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        self._trigger(first_day, now)
        self.print_banner()

    def _spawn(self, service: str, env: dict[str, str]) -> None:
        log = (self.home / "logs" / f"{service}.out").open("ab")
        self._logs.append(log)
        args = ["--host", "127.0.0.1", "--port", str(self.port)] if service == "api-server" else []
        # Own session: Ctrl-C in the terminal reaches only this program, which stops the services
        # in order; and a service's children (task processes) can be found and stopped with it.
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "airflow", service, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def check_running(self) -> None:
        """
        Raise when a service or the emulator has exited.

        :raises DemoError: naming it, with the tail of its output.
        """
        for service, process in self.processes.items():
            if process.poll() is not None:
                log = self.home / "logs" / f"{service}.out"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise DemoError(f"airflow {service} exited ({process.returncode}); end of {log}:\n{tail}")
        if self.emulator is not None and self.emulator.pid is None:
            raise DemoError("The emulator exited:\n" + "\n".join(self.emulator.output))

    def _api_healthy(self) -> bool:
        self.check_running()
        return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200

    def _login(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": USER, "password": self._password}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """
        Call Airflow's REST API (``/api/v2`` + ``path``) as the admin; return the JSON body.

        A 503 (SQLite was locked by another Airflow process) is tried again a few times.
        """
        for attempt in range(API_ATTEMPTS):
            response = httpx.request(
                method,
                f"{self.url}/api/v2{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=60,
                **kwargs,
            )
            if response.status_code != 503 or attempt == API_ATTEMPTS - 1:
                break
            time.sleep(2)
        response.raise_for_status()
        return response.json()

    def _dags_parsed(self) -> bool:
        self.check_running()
        dags = self.api("GET", "/dags", params={"dag_id_pattern": "example_voicetrack"})["dags"]
        return set(DAG_IDS) <= {dag["dag_id"] for dag in dags}

    def _trigger(self, first_day: datetime, now: datetime) -> None:
        """Backfill the extraction's earlier days; trigger the gate and the fan-out on the live data."""
        assert self.emulator is not None
        today = now.replace(hour=0, minute=0, second=0)
        # The scheduler runs the latest complete day by itself (catchup is off); the days before it
        # come from a backfill (by logical date, the start of a day here), so the grid shows a few runs.
        if today - first_day > timedelta(days=1):
            self.api(
                "POST",
                "/backfills",
                json={
                    "dag_id": EXTRACT,
                    "from_date": first_day.isoformat(),
                    "to_date": (today - timedelta(days=2)).isoformat(),
                    "max_active_runs": 2,
                },
            )
        # The campaign with the most calls still in progress right now, so the sensor has to wait.
        gate_end = datetime.now(timezone.utc).replace(microsecond=0)
        gate_start = gate_end - GATE_LOOKBACK
        calls = self.emulator.truth(date_start=gate_start, date_end=gate_end)
        in_progress = Counter(
            call["campaign"]
            for call in calls
            if call["campaign"] and call["status"]["status"] not in DEFAULT_TERMINAL_STATUSES
        )
        every_campaign = Counter(call["campaign"] for call in calls if call["campaign"])
        campaign_name = (in_progress or every_campaign).most_common(1)[0][0]
        campaign_tracking_id = next(c.tracking_id for c in CAMPAIGNS if c.name == campaign_name)
        self.api(
            "POST",
            f"/dags/{GATE}/dagRuns",
            json={
                "logical_date": None,
                "conf": {
                    "campaign_tracking_id": campaign_tracking_id,
                    "date_start": _z(gate_start),
                    "date_end": _z(gate_end),
                },
            },
        )
        pending = in_progress[campaign_name]
        say(f"Triggered {GATE}: campaign {campaign_name!r}, last hour, {pending} calls still in progress.")
        backfill_end = now.replace(minute=0, second=0)
        self.api(
            "POST",
            f"/dags/{BACKFILL}/dagRuns",
            json={
                "logical_date": None,
                "conf": {
                    "date_start": _z(first_day),
                    "date_end": _z(backfill_end),
                    "window_hours": BACKFILL_WINDOW_HOURS,
                },
            },
        )
        windows = f"{BACKFILL_WINDOW_HOURS} h windows"
        say(f"Triggered {BACKFILL}: {_z(first_day)} to {_z(backfill_end)} in {windows}.")

    def print_banner(self) -> None:
        """Where the UI is and how to log in: printed on every start."""
        say("")
        say(f"Airflow is up after {self.elapsed():.0f} s:  {self.url}")
        say(f"  Log in as {USER!r}, password {self._password!r}")
        say(f"  (kept in {self.home / 'simple_auth_manager_passwords.json.generated'})")
        say(f"  Output files: {self.output}    Service logs: {self.home / 'logs'}")
        say("  Press Ctrl-C to stop everything.")
        say("")

    # -- watch -----------------------------------------------------------------------------------

    def watch(self, until: Callable[[], bool] = lambda: False, every: float = 5.0) -> None:
        """
        Report each milestone once, as the UI gets it, until ``until()`` or a service exits.

        :raises DemoError: when a service or the emulator exits.
        """
        while not until():
            self.check_running()
            with contextlib.suppress(httpx.HTTPError):
                self.report_milestones()
            time.sleep(every)

    def report_milestones(self) -> None:
        """Print what the UI now shows that it did not before: runs done, the sensor deferred."""
        for dag_id in DAG_IDS:
            runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "end_date"})["dag_runs"]
            for run in runs:
                key = f"{dag_id}/{run['dag_run_id']}"
                if run["state"] in ("success", "failed") and key not in self.reported:
                    self.reported.add(key)
                    say(f"[{self.elapsed():4.0f} s] {dag_id}: run {run['dag_run_id']} {run['state']}")
        if "deferred" not in self.reported:
            deferred = self.api("GET", f"/dags/{GATE}/dagRuns/~/taskInstances", params={"state": "deferred"})
            if deferred["total_entries"]:
                self.reported.add("deferred")
                say(f"[{self.elapsed():4.0f} s] {GATE}: wait_for_calls is deferred, waiting in the triggerer")

    # -- stop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the services and everything they started (SIGTERM, SIGKILL after 20 s), then the emulator."""
        import psutil

        family: list[psutil.Process] = []
        for process in self.processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                family += [parent, *parent.children(recursive=True)]
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for log in self._logs:
            log.close()
        if self.emulator is not None:
            self.emulator.stop()


def _z(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """Turn SIGTERM into :class:`Stop` while inside, so it cleans up as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stop

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m example_dags.airflow_ui``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="make airflow", description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="UI port on 127.0.0.1 (0: any free)")
    parser.add_argument("--days", type=int, default=3, help="days of calls before now in the emulator")
    parser.add_argument("--home", type=Path, default=HOME, help="AIRFLOW_HOME")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the example DAGs write")
    args = parser.parse_args(argv)
    port = args.port
    if port and not port_is_free(port):
        port = free_port()
        say(f"Port {args.port} is in use; using {port} instead.")
    ui = AirflowUI(args.home.resolve(), args.output.resolve(), port, args.days)
    with sigterm_stops():
        try:
            ui.start()
            ui.watch()
        except (KeyboardInterrupt, Stop):
            say("Stopping Airflow and the emulator ...")
        except (DemoError, httpx.HTTPError, RuntimeError, OSError) as err:  # RuntimeError: the emulator
            print(f"make airflow failed: {err}", file=sys.stderr)
            return 1
        finally:
            ui.stop()
    say("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
