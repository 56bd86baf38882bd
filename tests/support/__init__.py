"""Helpers shared by the tests (and by benchmarks/dvc_cache.py and scripts/gpu_check.py, run with
PYTHONPATH=tests): importable as `support.<module>` because pyproject.toml's pytest `pythonpath` holds
tests/."""
