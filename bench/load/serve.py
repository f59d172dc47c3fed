"""The WSGI app one load-test server process serves: every function behind the local gateway.

Built from the deploy plan as `make dev` builds it (infra.gateway), test routes included, and
served by gunicorn with gthread workers as functions-framework serves a function in the cloud
(bench.load.runner starts it: `gunicorn bench.load.serve:app`). The fixed thread count bounds
the requests in flight per process, as a Cloud Run instance's concurrency does; the runner
sizes the Postgres pool to match, so a request never waits for a connection another request
could not release.
"""

from __future__ import annotations

from infra import deploy, gateway
from shared import context

context.init()
app = gateway.Gateway(
    deploy.plan(
        gateway.served_functions(True), deploy.load_config(gateway.LOCAL_PROJECT, gateway.LOCAL_REGION), {}, local=True
    )
)
