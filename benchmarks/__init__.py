"""Developer benchmarks, run as python -m benchmarks.NAME; not in the wheel."""
