"""Helpers shared by the test suites, importable as ``support`` (``pythonpath = ["tests"]`` in
``pyproject.toml``; a child process started by a test puts ``tests/`` on its path itself).

Plain code only: fixtures live in the ``conftest.py`` files and build on these modules.

- :mod:`support.dags`: store a DAG for ``dag.test()``, run one, and the :class:`~support.dags.Run` it gives.
- :mod:`support.s3`: moto's S3 server and a bucket on it.
- :mod:`support.emulator`: the emulator's data range, fast-retry connection extras, its ground truth.
- :mod:`support.messages`: small functions over lists of messages and output files.
"""
