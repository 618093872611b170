"""Example DAGs of airflow-provider-voicetrack, and ``python -m example_dags.demo`` (``make demo``)."""
