"""The package's metadata as the package index shows it (the built artefacts: `make package-check`)."""

from __future__ import annotations

import re
import subprocess
import sys
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
    # The project has no public repository or documentation host yet: no URL may name one.
    assert "urls" not in PROJECT


def test_imported_third_party_packages_are_declared() -> None:
    names = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in PROJECT["dependencies"]}
    assert {"apache-airflow", "requests", "pendulum", "httpx", "msgspec"} <= names
    emulator = {
        re.split(r"[<>= ]", requirement)[0] for requirement in PROJECT["optional-dependencies"]["emulator"]
    }
    # What airflow_voicetrack/emulator imports; fastapi is not one of them.
    assert emulator == {"starlette", "uvicorn", "msgspec"}


def readme_links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", (REPO / "README.md").read_text())


def test_readme_links_and_images_are_relative_and_resolve_in_a_clone() -> None:
    links = readme_links()
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert any(link.endswith(".png") for link in relative), "the README shows one picture"
    assert "docs/index.md" in relative, "the README links the documentation"
    missing = [link for link in relative if not (REPO / link.split("#")[0]).exists()]
    assert missing == []


def test_no_host_address_the_project_does_not_have() -> None:
    texts = [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "pyproject.toml", REPO / "mkdocs.yml"]
    texts += sorted((REPO / "docs").rglob("*.md"))
    for path in texts:
        for host in ("github.com", "githubusercontent.com", "gitlab.com", "readthedocs.io"):
            assert host not in path.read_text(), f"{path.relative_to(REPO)} names {host}"


def test_readme_has_an_install_section_and_a_first_dag() -> None:
    readme = (REPO / "README.md").read_text()
    assert "## Install and connect" in readme
    assert "pip install airflow-provider-voicetrack" in readme
    assert "<!-- first-dag -->" in readme
    assert len(readme.split()) < 1200


def test_the_package_index_description_is_the_readme_without_its_picture() -> None:
    """Built as the wheel's metadata is, by hatch-fancy-pypi-readme from the fragments in pyproject."""
    description = subprocess.run(
        [sys.executable, "-m", "hatch_fancy_pypi_readme", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "## Your first DAG" in description
    assert "## License" in description
    assert "![" not in description
    assert ".png" not in description


def test_the_version_is_set_in_pyproject_only() -> None:
    import airflow_voicetrack

    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    # The package reads its installed metadata; no second copy of the number to forget.
    assert PROJECT["version"] not in (REPO / "airflow_voicetrack" / "__init__.py").read_text()
    assert airflow_voicetrack.__version__ == PROJECT["version"]
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{PROJECT['version']}] - " in changelog
    assert "## [Unreleased]" in changelog
