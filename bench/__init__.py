"""Benchmarks (not tests): `make bench` runs every module here; one alone: `python -m bench.<name>`."""
