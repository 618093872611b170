"""
A production-shaped Airflow deployment for the stack test: PostgreSQL, Redis, ``CeleryExecutor``.

:class:`PostgresServer` and :class:`RedisServer` run Debian's ``postgres`` and ``redis-server`` on
127.0.0.1 and free ports, with their data in a folder of this checkout (so ``.ci/run``'s leftover
sweep, which looks for processes working in the checkout, finds them too). :class:`CeleryDeployment`
is :class:`~airflow_deployment.AirflowDeployment` with PostgreSQL as the metadata database, Redis as
the Celery broker and Celery workers as more services, each in its own process group and each
recording its own task-instance hostname (two workers on one machine would otherwise both record
``socket.getfqdn()``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from airflow_deployment import REPO, AirflowDeployment, free_port, wait_until

#: Set for each Celery worker: the hostname its task instances record (see :func:`worker_hostname`).
WORKER_ENV = "VOICETRACK_STACK_WORKER"
#: Where the servers keep their data: inside the checkout (git-ignored ``.airflow/``).
STATE_ROOT = REPO / ".airflow" / "stack"
#: A broker for one test: nothing written to disk.
PERSISTENCE_OFF = ("--save", "", "--appendonly", "no")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the Celery workers: the name the test gave the worker."""
    return os.environ[WORKER_ENV]


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in ``/usr/lib/postgresql/<major>/bin``."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(
            f"{name} not found: install Debian's postgresql package (apt-get install postgresql)"
        )
    return str(found[-1])


class PostgresServer:
    """
    A throw-away PostgreSQL cluster (``initdb`` in a private folder) listening on 127.0.0.1 only.

    PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to Debian's ``postgres``
    user. Connections from 127.0.0.1 are trusted: nothing else can reach the port.
    """

    def __init__(self) -> None:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="postgres-", dir=STATE_ROOT))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            self._as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
            # The postgres user must be able to reach its folder.
            for folder in (STATE_ROOT, STATE_ROOT.parent):
                folder.chmod(folder.stat().st_mode | 0o011)

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self._as_owner, *args], check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        """Create the cluster and the ``airflow`` role and database; start the server and wait for it."""
        self._run(
            _postgres_bin("initdb"), "-D", str(self.data), "-U", "airflow", "--auth=trust", "-E", "UTF8"
        )
        self._run(
            _postgres_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            # No Unix socket outside the private folder; a few more connections than the default 100.
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200 -c fsync=off",
            "start",
        )
        self._run(
            _postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A Redis server on 127.0.0.1 and a free port, without persistence, as the Celery broker."""

    def __init__(self) -> None:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="redis-", dir=STATE_ROOT))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start ``redis-server`` and wait until it answers PING."""
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("redis-server not found: install Debian's redis-server package")
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                # --dir: its working folder is in the checkout, for .ci/run's leftover sweep.
                [
                    program,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.root),
                    *PERSISTENCE_OFF,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        wait_until(client.ping, timeout=30, what="Redis to answer", every=0.2)
        client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s) and delete its folder."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


class CeleryDeployment(AirflowDeployment):
    """
    :class:`AirflowDeployment` on PostgreSQL with the ``CeleryExecutor`` on Redis and ``workers``
    Celery workers, ``worker-1`` ... ``worker-N``, one task at a time each.

    :param home: the ``AIRFLOW_HOME``.
    :param dags_folder: the DAGs folder.
    :param extra_env: more environment variables for every service.
    :param database_url: SQLAlchemy URL of the metadata database.
    :param broker_url: the Celery broker.
    :param workers: how many Celery workers.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: dict[str, str],
        *,
        database_url: str,
        broker_url: str,
        workers: int = 2,
    ) -> None:
        super().__init__(
            home,
            dags_folder,
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url,
                "AIRFLOW__CORE__PARALLELISM": "8",
                **extra_env,
            },
            executor="CeleryExecutor",
        )
        self.workers = [f"worker-{number}" for number in range(1, workers + 1)]
        for name in self.workers:
            self.commands[name] = (
                # Logs are files in the shared AIRFLOW_HOME: no log server (one port each) needed.
                ("celery", "worker", "--concurrency", "1", "--celery-hostname", name, "--skip-serve-logs"),
                {
                    WORKER_ENV: name,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack.worker_hostname",
                    "PYTHONPATH": os.pathsep.join(
                        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
                    ),
                },
            )

    def _create_db(self) -> None:
        self.cli("db", "migrate", timeout=600)
