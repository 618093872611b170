"""A throw-away Airflow deployment for system tests: the four Airflow 3 services as real processes.

``airflow api-server``, ``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and
``airflow triggerer`` run as subprocesses sharing one private ``AIRFLOW_HOME`` with a SQLite
database, one JWT secret and the execution API URL, as a small production deployment would
(Airflow 3 workers reach the database only through the API server's execution API).
Each service runs in its own process group; teardown stops the groups and every descendant
(LocalExecutor's task processes put themselves in their own group), always.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
#: A freshly migrated metadata DB, kept between sessions (``airflow db migrate`` takes ~20 s).
DB_TEMPLATE = REPO / ".airflow" / f"system-template-{version('apache-airflow-core')}.db"
#: The services besides the API server, as ``airflow`` arguments.
SERVICES: tuple[tuple[str, ...], ...] = (("scheduler",), ("dag-processor",), ("triggerer",))
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T | None], *, timeout: float, what: str, every: float = 1.0) -> T:
    """
    Call ``condition`` until it returns something truthy and return that; fail after ``timeout`` s.

    :param condition: the check; exceptions count as "not yet" until the deadline.
    :param timeout: seconds to wait at most.
    :param what: what is awaited, for the failure message.
    :param every: seconds between two checks.
    """
    deadline = time.monotonic() + timeout
    error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}; last error: {error!r}")
        time.sleep(every)


class AirflowDeployment:
    """
    The Airflow services of one private ``AIRFLOW_HOME``, started and stopped as processes.

    :param home: the ``AIRFLOW_HOME`` (created if missing; its ``logs/`` keeps the service logs).
    :param dags_folder: the DAGs folder the DAG processor parses.
    :param extra_env: more environment variables for every service and CLI call.
    :param executor: ``[core] executor``; :mod:`stack` runs the ``CeleryExecutor`` on this harness.
    """

    def __init__(
        self, home: Path, dags_folder: Path, extra_env: dict[str, str], *, executor: str = "LocalExecutor"
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            # Workers talk to the API server only; every process must sign and check the same JWTs.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # One Fernet key for every process: without it, services that start together can each make
            # their own before one has written airflow.cfg, and the triggerer then cannot decrypt the
            # kwargs of a trigger the DAG processor stored (JSONDecodeError in _decrypt_kwargs).
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Every REST call is an admin: no login dance in a test.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Fast loops, so a run takes seconds rather than minutes.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra_env,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: each service's ``airflow`` arguments and its own environment variables, to restart it
        self.commands: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
            "api-server": (
                ("api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                {},
            ),
            **{args[0]: (args, {}) for args in SERVICES},
        }
        self._logs: list[IO[bytes]] = []

    def log_path(self, service: str) -> Path:
        """Where the combined stdout/stderr of ``service`` goes."""
        return self.home / "logs" / f"{service}.out"

    def log_text(self, service: str) -> str:
        """Everything ``service`` printed so far."""
        return self.log_path(service).read_text(errors="replace")

    def scan_logs(self, needles: dict[str, str]) -> tuple[list[str], dict[Path, bytes]]:
        """
        Read every file under the logs folder (task logs, trigger logs, the services' output) and
        look for each needle.

        :param needles: what to look for, by a name for the failure message.
        :return: the hits, ``"<name> in <path>"``, and every file read with its bytes.
        """
        assert all(len(needle) >= 8 for needle in needles.values()), "a needle this short would prove nothing"
        logs = self.home / "logs"
        scanned = {path: path.read_bytes() for path in sorted(logs.rglob("*")) if path.is_file()}
        hits = [
            f"{what} in {path.relative_to(logs)}"
            for path, data in scanned.items()
            for what, needle in needles.items()
            if needle.encode() in data
        ]
        return hits, scanned

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow <args>`` in this deployment's environment; return its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, *, api_server_only: bool = False) -> None:
        """
        Migrate the database, start the services of :attr:`commands` and wait until the API answers.

        :param api_server_only: start the API server (and its UI) alone, e.g. to edit connections.
        """
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self._create_db()
        for name in self.commands:
            if name == "api-server" or not api_server_only:
                self.start_service(name)
        wait_until(self._api_healthy, timeout=90, what="the API server to answer", every=0.5)

    def _create_db(self) -> None:
        """Copy the migrated template DB into the home, migrating it first when there is none."""
        database = self.home / "airflow.db"
        if not DB_TEMPLATE.exists():
            self.cli("db", "migrate", timeout=300)
            DB_TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
            partial = DB_TEMPLATE.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(database, partial)
            os.replace(partial, DB_TEMPLATE)
        else:
            shutil.copyfile(DB_TEMPLATE, database)

    def start_service(self, name: str) -> None:
        """Start service ``name`` of :attr:`commands` in its own process group; output goes to its log."""
        args, env = self.commands[name]
        log = self.log_path(name).open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _api_healthy(self) -> bool:
        self.assert_running()
        return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200

    def assert_running(self) -> None:
        """Fail with the service's log tail when one of the services has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_text(name)[-4000:]
                raise AssertionError(f"airflow {name} exited with {process.returncode}:\n{tail}")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2`` + ``path``) and return the JSON body."""
        response = httpx.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def stop_service(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """
        Send ``sig`` to service ``name``, every process it started and their process groups; wait
        until all of them are gone (SIGKILL after 30 s). ``SIGKILL`` is a machine dying under it.
        """
        process = self.processes.pop(name)
        family = _family(process.pid)
        for pgid in {process.pid, *(_pgid(member.pid) for member in family)} - {None, os.getpgid(0)}:
            _signal_group(pgid, sig)
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(sig)
        _, alive = psutil.wait_procs(family, timeout=30)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(alive, timeout=10)
        process.wait(timeout=10)

    def stop(self) -> None:
        """Stop every service and every process they started: SIGTERM, then SIGKILL after 20 s."""
        family = [member for process in self.processes.values() for member in _family(process.pid)]
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        psutil.wait_procs(alive, timeout=10)
        for log in self._logs:
            log.close()


def _family(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (empty when it is gone)."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
