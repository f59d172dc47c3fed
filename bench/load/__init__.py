"""The load test (`make load`): locust against two server processes, then the invariants.

bench/load/runner.py drives a run; bench/load/locustfile.py holds the users and runs only
inside the locust subprocess. See docs/capacity.md ("Load test") for one run's figures.
"""
