"""Benchmarks: `python -m bench` prints speed and memory figures beside their targets."""
