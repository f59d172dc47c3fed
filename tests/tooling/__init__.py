"""Tests of the repository's own tooling (the deploy plan and preflight, the bundle, the docs,
OpenAPI and error-code checks, the layering contracts, the mutant registry), no servers."""
