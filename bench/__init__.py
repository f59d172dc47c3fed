"""Benchmarks (not tests): `make bench` runs every module here."""
