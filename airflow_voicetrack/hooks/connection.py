"""Reading the Airflow connection a hook talks through: the lookups, sync and async, and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook

from airflow_voicetrack.protocol import Settings, unknown_extras
from airflow_voicetrack.protocol.calls import Log


def connection_settings(
    conn_id: str, conn: Any, extra: Mapping[str, Any], overrides: Mapping[str, Any], log: Log
) -> Settings:
    """
    Validate the connection and the hook's arguments (see :meth:`Settings.from_connection`).

    Logs a warning for each unknown extra and when ``verify_ssl`` is off: a hook calls this once,
    so that its warnings come once per task.

    :param conn: the Airflow connection (its host, port, login and password are read).
    :param extra: its extras.
    :param overrides: the hook's keyword arguments; ``None`` values are ignored.
    """
    for problem in unknown_extras(extra, conn_id):
        log.warning("%s", problem)
    settings = Settings.from_connection(
        conn_id=conn_id,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        extra=extra,
        overrides=overrides,
    )
    if not settings.verify_ssl:
        log.warning(
            "Connection %r has verify_ssl off: TLS certificates are not verified, so a machine on the "
            "network path can pose as the API and read the application secret; turn verify_ssl on "
            "outside test servers",
            conn_id,
        )
    return settings


async def aget_connection(conn_id: str) -> tuple[Any, dict[str, Any]]:
    """
    Get a connection and its extras without blocking the event loop, on every supported Airflow version.

    :return: the connection and its extras.
    """
    try:
        from airflow.providers.common.compat.connection import get_async_connection
    except ImportError:  # common-compat without the helper: run the sync lookup in a thread
        from asgiref.sync import sync_to_async

        conn = await sync_to_async(BaseHook.get_connection)(conn_id)
    else:
        conn = await get_async_connection(conn_id)
    # Read the extras without a blocking call where Airflow offers one.
    aextra = getattr(conn, "aextra_dejson", None)
    return conn, (await aextra() if aextra is not None else conn.extra_dejson)
