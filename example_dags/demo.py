"""
``make demo``: run the daily extraction DAG for one day against a local API emulator.

Steps: start the emulator (``airflow_voicetrack.emulator``) on a free port; prepare a SQLite Airflow
home in ``.airflow/demo-home`` (migrated once, reused afterwards); run ``example_voicetrack_extract``
with ``airflow dags test`` for the data interval 2026-11-02T00:00Z..2026-11-03T00:00Z, the connection
given as ``AIRFLOW_CONN_VOICETRACK_DEFAULT``; print where the output is and how many records it
holds, and check that against the emulator's own count for the interval. The emulator is stopped
whatever happens. Running it again replaces the same output object.

Exit status 0 when the output matches, 1 otherwise. Airflow's own output goes to
``.airflow/demo-home/demo.log`` (its tail is printed when something fails).

``VOICETRACK_DEMO_HOME`` and ``VOICETRACK_DEMO_OUTPUT`` move the Airflow home and the output folder
(the tests give each parallel test worker its own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from airflow_voicetrack.emulator.process import EmulatorProcess

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(os.environ.get("VOICETRACK_DEMO_HOME") or REPO / ".airflow" / "demo-home")
LOG_FILE = AIRFLOW_HOME / "demo.log"
OUTPUT_BASE = Path(os.environ.get("VOICETRACK_DEMO_OUTPUT") or REPO / ".demo-output")
DAG_ID = "example_voicetrack_extract"
INTERVAL_START = datetime(2026, 11, 2, tzinfo=timezone.utc)
INTERVAL_END = datetime(2026, 11, 3, tzinfo=timezone.utc)
#: The DAG's CronDataIntervalTimetable gives a run with this logical date the day that ends at it.
LOGICAL_DATE = INTERVAL_END
#: Longest time one Airflow command may take.
COMMAND_TIMEOUT_S = 600


class DemoError(Exception):
    """A step of the demo failed; the message says which and what to look at."""


def say(text: str) -> None:
    """Print one line of progress, at once."""
    print(text, flush=True)


def demo_environment() -> dict[str, str]:
    """The environment of every Airflow command: this process's, minus any Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VOICETRACK_OUTPUT"))}
    env.update(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        VOICETRACK_OUTPUT_BASE=OUTPUT_BASE.as_uri(),
    )
    return env


def airflow(args: list[str], env: dict[str, str], what: str, log_file: Path = LOG_FILE) -> None:
    """
    Run ``airflow <args>``, appending its output to ``log_file``.

    :raises DemoError: when it fails or takes longer than :data:`COMMAND_TIMEOUT_S`, with the log's tail.
    """
    with log_file.open("a") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n")
        log.flush()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoError(f"{what} took more than {COMMAND_TIMEOUT_S} s.\n{log_tail(log_file)}") from None
    if result.returncode:
        raise DemoError(f"{what} failed (exit status {result.returncode}).\n{log_tail(log_file)}")


def log_tail(log_file: Path = LOG_FILE, lines: int = 40) -> str:
    """The last ``lines`` lines of ``log_file``, framed for an error message."""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last lines of {log_file} ---\n" + "\n".join(tail)


def migrate_once(env: dict[str, str], home: Path = AIRFLOW_HOME, log_file: Path = LOG_FILE) -> None:
    """Create the Airflow metadata database in ``home`` on the first run (and after an Airflow upgrade)."""
    marker = home / f".migrated-{version('apache-airflow-core')}"
    if marker.exists():
        return
    say(f"Creating the Airflow database in {home} (first run only) ...")
    airflow(["db", "migrate"], env, "airflow db migrate", log_file)
    marker.touch()


def output_file() -> Path:
    """Where the DAG writes the interval (the operator names the object after the interval)."""
    from airflow_voicetrack.output import default_file_name

    return OUTPUT_BASE / "voicetrack" / "daily" / default_file_name(INTERVAL_START, INTERVAL_END, "jsonl")


def run_demo() -> None:
    """
    Run the demo.

    :raises DemoError: when a step fails or the output does not match the emulator's data.
    """
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    LOG_FILE.write_text("")
    env = demo_environment()
    migrate_once(env)
    with EmulatorProcess(messages=10_000, seed=1) as emulator:
        say(f"Emulator (10,000 voice messages, 2026-11-01..2026-11-08) serving on {emulator.url}")
        env["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emulator.connection_json()
        interval = f"{INTERVAL_START:%Y-%m-%dT%H:%MZ} .. {INTERVAL_END:%Y-%m-%dT%H:%MZ}"
        say(f"Running {DAG_ID} for the data interval {interval} (airflow dags test) ...")
        started = time.time()
        airflow(["dags", "test", DAG_ID, LOGICAL_DATE.isoformat()], env, f"airflow dags test {DAG_ID}")
        expected = len(emulator.truth(date_start=INTERVAL_START, date_end=INTERVAL_END))

    path = output_file()
    if not path.exists() or path.stat().st_mtime < started:
        raise DemoError(f"The DAG run succeeded but wrote no new {path}.\n{log_tail()}")
    with path.open("rb") as lines:
        records = sum(1 for _ in lines)
    say(f"Output: {path.as_uri()}")
    say(f"        {records:,} records (JSON lines), {path.stat().st_size:,} bytes")
    if records != expected:
        raise DemoError(f"The emulator holds {expected:,} messages in that interval, the output {records:,}.")
    say(f"Check:  the emulator holds {expected:,} messages in that interval: match.")


def main() -> int:
    """Entry point of ``python -m example_dags.demo``; returns the exit status."""
    try:
        run_demo()
    except (DemoError, RuntimeError, OSError) as err:  # RuntimeError, OSError: the emulator
        print(f"make demo failed: {err}", file=sys.stderr)
        return 1
    say(f"Done. Airflow log: {LOG_FILE}")
    say_next_steps()
    return 0


def say_next_steps() -> None:
    """What a newcomer can try after the demo."""
    say("")
    say("Try next:")
    say("  make airflow   the three example DAGs running in Airflow's web UI against a live emulator")
    say("                 (prints the URL and the login; Ctrl-C stops it)")
    say("  example_dags/  example_voicetrack_gate.py (a deferred sensor waits for a campaign's calls),")
    say("                 example_voicetrack_backfill.py (one mapped extraction task per window)")
    say(f"  output         {OUTPUT_BASE / 'voicetrack' / 'daily'}/ (one JSON-lines file per day;")
    say("                 set VOICETRACK_OUTPUT_BASE=s3://bucket/prefix to write to S3 instead)")


if __name__ == "__main__":
    sys.exit(main())
