"""Apache Airflow provider for Routee's voice message tracking API."""

__version__ = "0.1.0"
