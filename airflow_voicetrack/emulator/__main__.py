"""Command line: ``python -m airflow_voicetrack.emulator [--port 0] [--messages N] [fault flags]``.

Prints exactly one line once the socket accepts connections: ``VoiceTrack emulator serving on
http://HOST:PORT`` followed by the credentials to use and the data it serves (the URL is the first
word after the prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields

import uvicorn

from airflow_voicetrack.emulator import SERVING_PREFIX
from airflow_voicetrack.emulator.app import EmulatorConfig, create_app
from airflow_voicetrack.emulator.faults import FaultSettings
from airflow_voicetrack.emulator.store import parse_settle_lag


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser: data set, credentials, pace, and one flag per fault."""
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_voicetrack.emulator",
        description="Local emulator of Routee's voice tracking API (and its OAuth token endpoint).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"By default it serves {defaults.messages} messages created from {defaults.start} to "
            f"{defaults.end} (exclusive),\nand accepts the demo credentials: application id "
            f"{defaults.client_id!r}, secret {defaults.client_secret!r}.\n"
            "An Airflow connection to it (port 8099 here: pass --port 8099):\n"
            '  AIRFLOW_CONN_VOICETRACK_DEFAULT=\'{"conn_type": "voicetrack", '
            f'"login": "{defaults.client_id}", "password": "{defaults.client_secret}", '
            '"host": "http://127.0.0.1:8099", '
            '"extra": {"auth_url": "http://127.0.0.1:8099/oauth/token"}}\''
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--messages", type=int, default=defaults.messages)
    parser.add_argument("--start", default=defaults.start, help="creation times start (ISO-8601)")
    parser.add_argument("--end", default=defaults.end, help="creation times end, exclusive (ISO-8601)")
    parser.add_argument("--client-id", default=defaults.client_id)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=defaults.settle_seconds,
        help="statuses reach their final value within this many seconds (0 = already final)",
    )
    parser.add_argument(
        "--settle-lag",
        metavar="MIN:MAX",
        default=None,
        help="instead of --settle-seconds, as real calls do: each message reaches its final status "
        "between MIN and MAX seconds after its own creation (e.g. 60:120); with --arrival-rate, new "
        "calls keep arriving at 'now' and finish that long after",
    )
    parser.add_argument(
        "--arrival-rate", type=float, default=defaults.arrival_rate, help="new messages per second"
    )
    parser.add_argument(
        "--lenient-params",
        action="store_true",
        help="ignore query parameters an endpoint does not have (as a typical Spring service does) "
        "instead of answering 400 Validation Error naming them",
    )
    parser.add_argument(
        "--date-params",
        metavar="START,END",
        default=",".join(defaults.date_params),
        help="the names under which the search reads its date range (default: %(default)s, the published "
        "names); e.g. dateStart,dateEnd plays a service with the other spelling",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop when this process is no longer our parent (EmulatorProcess passes its own pid, so "
        "an emulator never outlives the program that started it, even one killed with SIGKILL)",
    )
    parser.add_argument(
        "--request-log",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N API and token exchanges, secrets redacted, for GET /_emulator/requests "
        "(0 = off; for tests that check requests and responses against the API's contract)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    faults = parser.add_argument_group("faults (all off by default; also PUT /_emulator/faults)")
    for f in fields(FaultSettings):
        kind = {"float": float, "int": int, "str": str}[str(f.type)]
        faults.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=f.default,
            help=f"{f.metadata['help']} (default: {f.default})",
            # A switch's flag alone turns it on: --rate-limit-headers
            nargs="?" if f.metadata["switch"] else None,
            const=1 if f.metadata["switch"] else None,
        )
    return parser


def parse_date_params(value: str) -> tuple[str, str]:
    """Read ``--date-params``: two distinct, non-empty names separated by a comma.

    :raises ValueError: naming the flag and the expected form.
    """
    names = [name.strip() for name in value.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise ValueError(
            f"--date-params must be two names separated by a comma, e.g. dateStart,dateEnd; got {value!r}"
        )
    return names[0], names[1]


def serving_line(url: str, config: EmulatorConfig) -> str:
    """
    The start-up line: the URL, then the credentials and the data a newcomer needs to use it.

    The demo secret is shown; a secret given with ``--client-secret`` is not.
    """
    secret = config.client_secret
    if secret != EmulatorConfig().client_secret:
        secret = "as given by --client-secret"
    return (
        f"{SERVING_PREFIX}{url} (application id {config.client_id!r}, secret {secret!r}; "
        f"{config.messages} messages created {config.start} to {config.end}; token URL {url}/oauth/token)"
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, line: str, parent_pid: int | None) -> None:
        super().__init__(config)
        self.line = line
        self.parent_pid = parent_pid

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            if self.parent_pid is not None:
                self._watchdog = asyncio.create_task(self._exit_when_orphaned(self.parent_pid))
            print(self.line, flush=True)

    async def _exit_when_orphaned(self, parent_pid: int) -> None:
        while os.getppid() == parent_pid:
            await asyncio.sleep(1.0)
        self.should_exit = True


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator until interrupted.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    values = vars(args)
    try:
        faults = FaultSettings(**{f.name: values[f.name] for f in fields(FaultSettings)})
        faults.validate()
        config = EmulatorConfig(
            seed=args.seed,
            messages=args.messages,
            start=args.start,
            end=args.end,
            client_id=args.client_id,
            client_secret=args.client_secret,
            settle_seconds=args.settle_seconds,
            arrival_rate=args.arrival_rate,
            settle_lag=None if args.settle_lag is None else parse_settle_lag(args.settle_lag),
            faults=faults,
            lenient_params=args.lenient_params,
            date_params=parse_date_params(args.date_params),
            request_log=args.request_log,
        )
        app, _ = create_app(config)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = _Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.log_level in ("info", "debug"),
            timeout_keep_alive=30,
            lifespan="on",
        ),
        serving_line(url, config),
        args.parent_pid,
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
