"""Running a benchmark: the run engine, the Locust child, the embedded target, workers."""
