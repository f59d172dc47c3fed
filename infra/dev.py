"""`make dev`: embedded Postgres + Valkey (unless DATABASE_URL / VALKEY_URL are set), migrate,
seed an admin and demo mitras, then serve every function of the manifest on one port.

Every setting can be overridden from the environment; defaults are printed at start.
Ctrl-C stops the gateway and the embedded servers.

It refuses to start on a HOST that is not loopback while the test endpoints are served or the
sweeps run without caller verification (the defaults here): /internal/_test/last-otp hands out
any phone's sign-in code and seed-mitra creates accounts, so on 0.0.0.0 anyone on the network
could sign in as anyone. To reach it from a phone, forward the port instead
(`adb reverse tcp:8080 tcp:8080`, or an SSH tunnel).
"""

from __future__ import annotations

import base64
import ipaddress
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
from infra.apple_standin import AppleStandIn
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

    The assets are Swagger UI 5 (it reads OpenAPI 3.1) from the swagger-ui-py package's static
    directory (a dev requirement, never in a bundle).
    """
    import swagger_ui

    static = Path(swagger_ui.__file__).resolve().parent / "static"
    assets = SharedDataMiddleware(app, {f"{DOCS}/": str(static)}, cache=False)

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


def start_apple_standin() -> AppleStandIn | None:
    """Without Apple credentials, Sign in with Apple talks to the loopback stand-in of Apple's API.

    Its `POST /_dev/authorize` ({sub, client_id, nonce_hash}) gives what Apple's sheet gives an
    app (an id_token and an authorization code); docs/auth.md shows the whole flow with curl.
    """
    if os.environ.get("APPLE_TEAM_ID"):
        return None
    stand_in = AppleStandIn().start()
    os.environ.update(stand_in.settings())
    os.environ.setdefault("APPLE_SERVICES_ID", "id.bestie.dev")
    os.environ.setdefault("APPLE_TOKEN_ENCRYPTION_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    return stand_in


def midtrans_standin(gateway_url: str) -> Any:
    """The loopback Midtrans stand-in (tests/support/midtrans_standin.py), unless PAYMENT_PROVIDER is set.

    Payments go through the real Midtrans adapter to it; `python -m infra.pay SESSION_ID` pays
    a session's waiting payment (its URL is kept in .data/, see infra/pay.py).
    """
    if os.environ.get("PAYMENT_PROVIDER"):
        return None
    from tests.support.midtrans_standin import MidtransStandIn

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


def exposure_problem(host: str, env: dict[str, str]) -> str | None:
    """Why serving on `host` with `env` (dev defaults filled in) is unsafe, or None when it is not."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a name other than localhost may resolve to anything
    unsafe = []
    if env.get("ENABLE_TEST_ENDPOINTS", "").lower() in ("1", "true", "yes", "on"):
        unsafe.append("ENABLE_TEST_ENDPOINTS=1 serves /internal/_test/* (any phone's sign-in code, new accounts)")
    if env.get("SWEEP_AUTH", "").lower() == "none":
        unsafe.append("SWEEP_AUTH=none runs the sweeps for any caller")
    if not unsafe:
        return None
    return (
        f"refusing to serve on HOST={host}, which is not a loopback address, while "
        + "; ".join(unsafe)
        + ". Use HOST=127.0.0.1 and forward the port (adb reverse tcp:8080 tcp:8080, or an SSH tunnel)."
    )


def main() -> int:
    # Before anything starts or changes: a dev server reachable from the network with the test
    # endpoints on is an open door.
    problem = exposure_problem(os.environ.get("HOST", "127.0.0.1"), {**DEV_DEFAULTS, **os.environ})
    if problem:
        print(f"\n*** {problem} ***\n", file=sys.stderr, flush=True)
        return 2
    # Ctrl-C even when started with SIGINT ignored (a background job), and SIGTERM (kill, a
    # supervisor, `timeout`) both unwind through the `with` below, so the embedded servers stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prepare_env()
    apple = start_apple_standin()
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
        if apple is not None:
            print(f"Sign in with Apple: loopback stand-in at {apple.url} (POST /_dev/authorize)\n", flush=True)
        if standin is not None:
            print(
                f"payments: Midtrans stand-in on {standin.url}; pay with `python -m infra.pay SESSION_ID`\n", flush=True
            )
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
            if apple is not None:
                apple.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
