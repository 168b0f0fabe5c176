"""Ratline's benchmark suite: `python -m bench` measures and writes docs/benchmarks.md."""
