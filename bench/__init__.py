"""Benchmarks: `make bench` (python -m bench). Speed is reported here, never asserted in tests."""
