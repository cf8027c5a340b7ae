"""Benchmarks of the goldrush operator (see bench/README.md); entry point `python -m bench.run`."""
