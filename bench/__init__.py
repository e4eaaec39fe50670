"""Benchmarks of the sentiment service: offline ceiling, served load, batching policy, start-up,
size and where the time goes. Entry point: python -m bench.run (see bench/run.py)."""
