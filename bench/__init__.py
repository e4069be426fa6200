"""Benchmarks: `python -m bench.<name> [--size N]`, each prints a summary with a baseline ratio."""
