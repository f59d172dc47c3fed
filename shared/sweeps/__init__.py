"""Sweeps: periodic work invoked by Cloud Scheduler (docs/sweeps.md)."""
