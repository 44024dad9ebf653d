"""Benchmark and fault-trial scripts; each writes its section of docs/BENCHMARKS.md."""
