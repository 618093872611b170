"""The package's metadata as the package index shows it (the built artefacts: `make package-check`)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_license_file_is_the_apache_2_text() -> None:
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert (
        "Apache License\n                           Version 2.0, January 2004"
        in (REPO / "LICENSE").read_text()
    )


def test_classifiers_keywords_and_urls() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12)} <= classifiers
    assert "airflow" in PROJECT["keywords"]
    assert set(PROJECT["urls"]) == {"Documentation", "Changelog", "Issues", "Source"}


def test_imported_third_party_packages_are_declared() -> None:
    names = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in PROJECT["dependencies"]}
    assert {"apache-airflow", "requests", "pendulum", "httpx", "msgspec", "pyyaml"} <= names
    emulator = {
        re.split(r"[<>= ]", requirement)[0] for requirement in PROJECT["optional-dependencies"]["emulator"]
    }
    # What airflow_voicetrack/emulator imports; fastapi is not one of them.
    assert emulator == {"starlette", "uvicorn", "msgspec"}


def test_readme_links_work_from_the_package_index() -> None:
    # The index renders README.md without the repository: relative links would point nowhere.
    links = re.findall(r"\]\(([^)]+)\)", (REPO / "README.md").read_text())
    assert links
    assert [link for link in links if not link.startswith(("https://", "http://", "#"))] == []


def test_readme_has_an_install_section_for_package_index_users() -> None:
    readme = (REPO / "README.md").read_text()
    assert "## Install from the package index" in readme
    assert "pip install airflow-provider-voicetrack" in readme
