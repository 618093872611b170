"""``python -m airflow_voicetrack.probe``."""

import sys

from airflow_voicetrack.probe.cli import main

sys.exit(main())
