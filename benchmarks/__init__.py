"""Extraction benchmarks: our hook and writer against a raw ``requests`` loop and Airflow's HttpOperator.

``python -m benchmarks.run --help`` (or ``make bench``) runs them against the emulator on 127.0.0.1;
each variant runs in its own process (``python -m benchmarks.variant_*``) and reports one JSON line
(see :mod:`benchmarks.common`). Results of the reference run are in ``benchmarks/RESULTS.md``.
"""
