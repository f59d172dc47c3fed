"""Sweeps: periodic work invoked by Cloud Scheduler (SPEC §9)."""
