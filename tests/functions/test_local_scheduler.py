"""`make dev`'s local scheduler calls sweeps over real HTTP like Cloud Scheduler would."""

import threading
from datetime import UTC, datetime

from werkzeug.serving import make_server

from infra import gateway
from infra.local_scheduler import LocalScheduler
from shared import manifest


def test_local_scheduler_fires_a_sweep_over_http_with_the_scheduler_headers(isolated_ctx):
    served = gateway.served_functions(enable_test_endpoints=True)
    server = make_server("127.0.0.1", 0, gateway.Gateway(served), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheduler = LocalScheduler(f"http://127.0.0.1:{server.server_port}", served)
        assert {fn.route for fn in scheduler.sweeps} == {fn.route for fn in manifest.load().functions if fn.is_sweep}
        reseed = next(fn for fn in scheduler.sweeps if fn.route == "/sweeps/availability-reseed")
        tick = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
        first = scheduler.fire(reseed, tick)
        again = scheduler.fire(reseed, tick)  # the same schedule time: a retried delivery
    finally:
        server.shutdown()
    assert first is not None and first["ran"] is True and first["reseeded"] == 1
    assert again == {"ran": False, "passes": 0, "reason": "duplicate_delivery"}
