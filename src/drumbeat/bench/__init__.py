"""Benchmark scenarios behind `drumbeat bench …`; each measures Drumbeat next to a raw floor
(the same work in plain SQL, run in the same process) and writes its figures to BENCHMARKS.md."""
