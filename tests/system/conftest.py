"""Fixtures of the system tests: Airflow deployments started and stopped by the test module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow_deployment import AirflowDeployment


@pytest.fixture(scope="module")
def deployment_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AirflowDeployment]]:
    """Start :class:`AirflowDeployment` objects on demand; stop every one of them at module end."""
    started: list[AirflowDeployment] = []

    def start(
        dags_folder: Path, extra_env: dict[str, str], *, api_server_only: bool = False
    ) -> AirflowDeployment:
        deployment = AirflowDeployment(tmp_path_factory.mktemp("airflow-home"), dags_folder, extra_env)
        started.append(deployment)
        deployment.start(api_server_only=api_server_only)
        return deployment

    yield start
    for deployment in started:
        deployment.stop()
