"""Benchmarks and reliability drills: ``python -m bench`` (see docs/PERFORMANCE.md)."""
