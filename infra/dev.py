"""`make dev`: embedded Postgres + Valkey (unless DATABASE_URL / VALKEY_URL are set), migrate,
seed an admin and demo mitras, then serve every function of the manifest on one port.

Every setting can be overridden from the environment; defaults are printed at start.
Ctrl-C stops the gateway and the embedded servers.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.serving import run_simple
from werkzeug.wrappers import Response

from infra import embedded, gateway, migrate
from infra.local_scheduler import LocalScheduler

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("BESTIE_DATA_DIR", REPO / ".data"))

DEV_DEFAULTS = {
    "ENABLE_TEST_ENDPOINTS": "1",
    "SWEEP_AUTH": "none",
    "OTP_PROVIDER": "log",
    "PUSH_PROVIDER": "log",
    "ADMIN_EMAIL": "admin@bestie.local",
    "ADMIN_PASSWORD": "BestieAdmin1",
    "CC_ORIGIN": "http://localhost:5173",
    "TRUSTED_PROXY_HOPS": "0",
}

DEMO_MITRAS = [
    ("+6281200000001", "Ayu"),
    ("+6281200000002", "Budi"),
    ("+6281200000003", "Citra"),
]


DOCS = "/docs"
SPEC = REPO / "openapi.yaml"
_EXPLORER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Bestie API explorer (dev)</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{docs}/openapi.yaml", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


def api_explorer(app: gateway.WsgiApp) -> gateway.WsgiApp:
    """`make dev` only: Swagger UI at /docs over the project's own openapi.yaml; the rest goes to `app`.

    The assets come from the swagger-ui-bundle package (a dev requirement, never in a bundle).
    """
    from swagger_ui_bundle import swagger_ui_path

    assets = SharedDataMiddleware(app, {f"{DOCS}/": str(swagger_ui_path)}, cache=False)

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in (DOCS, f"{DOCS}/"):
            page = Response(_EXPLORER_PAGE.format(docs=DOCS), mimetype="text/html")
            return page(environ, start_response)
        if path == f"{DOCS}/openapi.yaml":
            return Response(SPEC.read_bytes(), mimetype="application/yaml")(environ, start_response)
        return assets(environ, start_response)

    return serve


def _dev_secret(name: str) -> str:
    """A generated secret kept under .data/ so tokens survive a restart of `make dev`."""
    path = DATA / f"{name.lower()}.secret"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def prepare_env() -> None:
    for key, value in DEV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("AUTH_JWT_SECRET", _dev_secret("AUTH_JWT_SECRET"))
    os.environ.setdefault("OTP_HMAC_SECRET", _dev_secret("OTP_HMAC_SECRET"))


def midtrans_standin(gateway_url: str) -> Any:
    """The loopback Midtrans stand-in (tests/midtrans_standin.py), unless PAYMENT_PROVIDER is set.

    Payments go through the real Midtrans adapter to it; `python -m infra.pay SESSION_ID` pays
    a session's waiting payment (its URL is kept in .data/, see infra/pay.py).
    """
    if os.environ.get("PAYMENT_PROVIDER"):
        return None
    from tests.midtrans_standin import MidtransStandIn

    key = _dev_secret("MIDTRANS_SERVER_KEY")
    standin = MidtransStandIn(key, f"{gateway_url}/api/payments/midtrans/notification").start()
    os.environ.update(
        PAYMENT_PROVIDER="midtrans",
        MIDTRANS_SERVER_KEY=key,
        MIDTRANS_SNAP_URL=standin.url,
        MIDTRANS_API_URL=standin.url,
    )
    (DATA / "midtrans-standin.url").write_text(standin.url)
    return standin


def seed(ctx: object) -> None:
    """Idempotent demo data: the admin account and a few mitras."""
    from shared.auth.cc_users import ensure_admin
    from shared.context import AppContext

    assert isinstance(ctx, AppContext)
    ensure_admin(ctx, os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"])
    with ctx.db.transaction() as tx:
        for phone, name in DEMO_MITRAS:
            tx.execute(
                "INSERT INTO mitras (phone_e164, display_name) VALUES (:p, :n) ON CONFLICT (phone_e164) DO NOTHING",
                p=phone,
                n=name,
            )
        tx.commit()


def main() -> int:
    # Ctrl-C even when started with SIGINT ignored (a background job), and SIGTERM (kill, a
    # supervisor, `timeout`) both unwind through the `with` below, so the embedded servers stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prepare_env()
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "127.0.0.1")
    with embedded.services(DATA, persistent=True) as env:
        os.environ.update(env)
        standin = midtrans_standin(f"http://{host}:{port}")
        from shared import context

        ctx = context.init()
        print(f"migrations applied: {migrate.migrate(ctx.db) or 'none pending'}", flush=True)
        seed(ctx)
        plan = gateway.local_plan(ctx.settings.enable_test_endpoints)
        served = [fp.fn for fp in plan.functions]
        app = api_explorer(gateway.Gateway(plan))
        print(f"\nBestie dev server on http://{host}:{port} (API explorer: {DOCS})\n", flush=True)
        print(gateway.route_table(served), flush=True)
        print(f"\nDATABASE_URL={env['DATABASE_URL']}\nVALKEY_URL={env['VALKEY_URL']}", flush=True)
        shown = os.environ["ADMIN_PASSWORD"]
        if shown != DEV_DEFAULTS["ADMIN_PASSWORD"]:
            shown = "(from ADMIN_PASSWORD)"  # print only the documented default, never a real secret
        print(f"control center admin: {os.environ['ADMIN_EMAIL']} / {shown}\n", flush=True)
        if standin is not None:
            print(f"payments: Midtrans stand-in on {standin.url}; pay with `python -m infra.pay SESSION_ID`\n")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        scheduler = LocalScheduler(f"http://{host}:{port}", plan)
        scheduler.start()
        try:
            run_simple(host, port, app, threaded=True, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            scheduler.stop()
            if standin is not None:
                standin.stop()
            ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
