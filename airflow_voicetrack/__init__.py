"""Apache Airflow provider for Routee's voice message tracking API."""

from importlib.metadata import PackageNotFoundError, version

#: The distribution's name on the package index; the version lives in its metadata only
#: (``pyproject.toml``), so the package and Airflow's provider list cannot disagree.
DISTRIBUTION = "airflow-provider-voicetrack"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
