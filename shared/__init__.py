"""Bestie backend library: services and adapters vendored into every function bundle."""
