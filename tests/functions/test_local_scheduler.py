"""`make dev`'s local scheduler fires the deploy plan's own jobs over real HTTP."""

import threading
from datetime import UTC, datetime

from werkzeug.serving import make_server

from infra import gateway
from infra.local_scheduler import LocalScheduler, job_id
from shared import manifest


def test_local_scheduler_fires_the_plans_jobs_at_their_uri_on_the_function_url(isolated_ctx):
    plan = gateway.local_plan(enable_test_endpoints=True)
    server = make_server("127.0.0.1", 0, gateway.Gateway(plan), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheduler = LocalScheduler(f"http://127.0.0.1:{server.server_port}", plan)
        assert {job_id(job) for job in scheduler.jobs} == {fn.name for fn in manifest.load().functions if fn.is_sweep}
        reseed = next(job for job in scheduler.jobs if job_id(job) == "sweep-availability-reseed")
        assert scheduler.url_of(reseed).endswith("/_functions/sweep-availability-reseed/sweeps/availability-reseed")
        tick = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
        first = scheduler.fire(reseed, tick)
        again = scheduler.fire(reseed, tick)  # the same schedule time: a retried delivery
    finally:
        server.shutdown()
    assert first is not None and first["ran"] is True and first["reseeded"] == 1
    assert again == {"ran": False, "passes": 0, "reason": "duplicate_delivery"}
