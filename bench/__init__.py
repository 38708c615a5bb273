"""Benchmarks of yeastar_async against baselines (issue 6): run ``python bench/run.py``."""
