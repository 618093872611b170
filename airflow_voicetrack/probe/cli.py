"""The probe's command line: ``python -m airflow_voicetrack.probe`` (see :mod:`~airflow_voicetrack.probe`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence

import requests

from airflow_voicetrack.exceptions import VoiceTrackError
from airflow_voicetrack.probe.checks import DEFAULT_UNKNOWN_WAIT, FAILS, render, run
from airflow_voicetrack.probe.client import DEFAULT_MAX_REQUESTS, PROBE_MAX_WAIT, BudgetExhausted, ProbeClient
from airflow_voicetrack.protocol import Settings


def settings_from_arguments(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """
    Build the connection settings from the command line.

    From ``--conn-id`` (an Airflow connection), or from ``--host``, ``--auth-url``, ``--app-id`` and
    the secret in the environment variable ``--secret-env``.

    :raises ValueError: naming the missing argument.
    """
    if args.conn_id:
        from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

        return VoiceTrackHook(args.conn_id).settings
    app_id = args.app_id or environ.get("VOICETRACK_APP_ID")
    secret = environ.get(args.secret_env)
    if not app_id:
        raise ValueError(
            "give --conn-id, or --app-id (or VOICETRACK_APP_ID) with the secret in the environment"
        )
    if not secret:
        raise ValueError(f"set the environment variable {args.secret_env} to the application secret")
    extra = {"auth_url": args.auth_url or environ.get("VOICETRACK_AUTH_URL") or ""}
    return Settings.from_connection(
        conn_id="the command line",
        host=args.host or environ.get("VOICETRACK_HOST"),
        port=None,
        login=app_id,
        password=secret,
        extra=extra,
        overrides={},
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_voicetrack.probe",
        description="Check this provider's assumptions about the voice tracking API with read-only searches.",
    )
    parser.add_argument("--conn-id", help="an Airflow connection of type voicetrack")
    parser.add_argument(
        "--host", help="API base URL (default https://connect.routee.net; env VOICETRACK_HOST)"
    )
    parser.add_argument("--auth-url", help="OAuth2 token URL (default https://auth.routee.net/oauth/token)")
    parser.add_argument("--app-id", help="application id (env VOICETRACK_APP_ID)")
    parser.add_argument(
        "--secret-env",
        default="VOICETRACK_APP_SECRET",
        help="environment variable holding the application secret (default VOICETRACK_APP_SECRET)",
    )
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS, help="request budget")
    parser.add_argument(
        "--unknown-wait", type=float, default=DEFAULT_UNKNOWN_WAIT, help="seconds before re-reading Unknown"
    )
    parser.add_argument("--max-wait", type=float, default=PROBE_MAX_WAIT, help="cap on one Retry-After wait")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the probe and print its table; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.max_requests < 10:
        print("error: --max-requests must be at least 10", file=sys.stderr)
        return 2
    try:
        settings = settings_from_arguments(args, os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = ProbeClient(settings, args.max_requests, max_wait=args.max_wait)
    started = time.monotonic()
    try:
        findings = run(client, unknown_wait=args.unknown_wait)
    except (VoiceTrackError, BudgetExhausted, requests.RequestException) as exc:
        print(f"error: the probe could not start: {client.redact(str(exc))}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(
        f"VoiceTrack API probe of {settings.base_url}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print(render(findings))
    print(f"\n{client.sent} requests (read-only searches and one token), {time.monotonic() - started:.1f} s.")
    return 1 if any(f.result == FAILS for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
