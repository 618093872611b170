"""
Check an installed wheel as a user of the package index gets it (``make package-check``).

Run with the Python of a fresh virtualenv that holds the wheel and nothing else of this repo, from a
directory that holds a copy of ``example_dags/`` (and this script), so that ``airflow_voicetrack``
can only come from the wheel. It checks that:

1. ``airflow_voicetrack`` is imported from that virtualenv's site-packages;
2. ``airflow_voicetrack.__version__`` is the installed version, and the description the package
   index shows holds no image and no host address (the project has none yet);
3. Airflow's own CLI registers the provider: the package and version, the hook, the connection form;
4. ``python -m airflow_voicetrack.emulator --help`` shows the demo credentials;
5. the daily extraction example DAG runs against the emulator (``example_dags.demo``: ``airflow dags
   test``, output compared with the emulator's own count).

Exit status 0 when all hold; the first failure is printed and gives 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import metadata, version
from pathlib import Path

PACKAGE = "airflow-provider-voicetrack"


def run(*args: str) -> str:
    """Run a command with this Python; return its stdout or raise with its stderr."""
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, check=False, env=os.environ
    )
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> int:
    """Run the checks in order; stop at the first failure."""
    # Airflow's CLI keeps its state in a home of this directory, not in ~/airflow.
    os.environ["AIRFLOW_HOME"] = str(Path.cwd() / ".airflow" / "cli-home")
    import airflow_voicetrack

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(airflow_voicetrack.__file__).resolve()
    if site not in where.parents:
        raise SystemExit(f"airflow_voicetrack comes from {where}, not from the wheel in {site}")
    print(f"package-check: airflow_voicetrack {version(PACKAGE)} imported from {where.parent}", flush=True)
    if airflow_voicetrack.__version__ != version(PACKAGE):
        raise SystemExit(f"__version__ is {airflow_voicetrack.__version__}, the wheel {version(PACKAGE)}")
    description = metadata(PACKAGE)["Description"] or ""
    for unwanted in ("![", "<img", "github.com", "githubusercontent"):
        if unwanted in description:
            raise SystemExit(f"the package index description holds {unwanted!r}")
    if "Your first DAG" not in description or metadata(PACKAGE).get_all("Project-URL"):
        raise SystemExit("the description lacks the README's first DAG, or the metadata names project URLs")

    providers = {
        row["package_name"]: row
        for row in json.loads(run("-m", "airflow", "providers", "list", "-o", "json"))
    }
    if providers.get(PACKAGE, {}).get("version") != version(PACKAGE):
        raise SystemExit(f"airflow providers list does not show {PACKAGE} {version(PACKAGE)}")
    hooks = {
        row["connection_type"]: row
        for row in json.loads(run("-m", "airflow", "providers", "hooks", "-o", "json"))
    }
    if hooks.get("voicetrack", {}).get("class") != "airflow_voicetrack.hooks.voicetrack.VoiceTrackHook":
        raise SystemExit("airflow providers hooks does not list the voicetrack connection type")
    widgets = json.loads(run("-m", "airflow", "providers", "widgets", "-o", "json"))
    if not any(row["connection_parameter_name"] == "extra__voicetrack__auth_url" for row in widgets):
        raise SystemExit("airflow providers widgets does not show the auth_url field of the form")
    print("package-check: Airflow registers the provider, its hook and its connection form", flush=True)

    if "demo-app-secret" not in run("-m", "airflow_voicetrack.emulator", "--help"):
        raise SystemExit("the emulator's --help does not show the demo credentials")

    from example_dags.demo import main as demo

    return demo()


if __name__ == "__main__":
    sys.exit(main())
