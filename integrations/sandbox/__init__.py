"""Fake third-party servers (sandboxes) for tests, benchmarks and the demo."""
