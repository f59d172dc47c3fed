"""The key flows of a release, driven through that release's own functions (run by test_previous_release).

Runs in a fresh interpreter whose sys.path holds only the previous release's exported tree
(functions/, shared/, infra/) and site-packages, against a database migrated by the current
release: every request goes through the old code's manifest and entry points, the way its
still-running functions would serve it during a rollout. Prints one JSON line of what it saw;
any unexpected answer raises, so the process exits non-zero.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import bcrypt
import functions_framework

from shared import manifest  # the previous release's manifest: this tree is first on sys.path

ROOT = Path(sys.path[0])
APPS: dict = {}
SEEN: list = []


def call(method: str, path: str, *, token: str | None = None, body: dict | None = None, **query: str) -> dict:
    """Send one request to whichever old function serves it; return its JSON."""
    clean = path.split("?")[0]
    fn = next(f for f in manifest.load().functions if f.method == method and f.match(clean) is not None)
    if fn.name not in APPS:
        source = ROOT / "functions" / fn.group / "main.py"
        APPS[fn.name] = functions_framework.create_app(target=fn.entry_point, source=str(source)).test_client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if clean.startswith("/internal/"):
        headers["Origin"] = os.environ["CC_ORIGIN"]
    resp = APPS[fn.name].open(path, method=method, json=body, headers=headers, query_string=query)
    SEEN.append(f"{method} {clean} {resp.status_code}")
    if resp.status_code >= 300:
        raise AssertionError(f"{method} {path} -> {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    return resp.get_json(silent=True) or {}


def sql(statement: str, **params: object) -> None:
    from shared import context

    with context.current().db.transaction() as tx:
        tx.execute(statement, **params)
        tx.commit()


def main() -> None:
    customer = call("POST", "/api/shared/auth/anonymous")
    refreshed = call("POST", "/api/shared/auth/refresh", body={"refresh_token": customer["refresh_token"]})
    token = refreshed["access_token"]

    phone = f"+62812{uuid.uuid4().int % 10**8:08d}"
    sql("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'Ayu')", p=phone)
    request_id = call("POST", "/api/mitra/auth/otp/request", body={"phone": phone})["request_id"]
    code = call("GET", "/internal/_test/last-otp", phone=phone)["code"]
    verify = {"phone": phone, "code": code, "request_id": request_id}
    mitra = call("POST", "/api/mitra/auth/otp/verify", body=verify)["access_token"]
    call("POST", "/api/mitra/status/online", token=mitra)
    call("POST", "/api/mitra/status/heartbeat", token=mitra)

    email = f"staff-{uuid.uuid4().hex[:8]}@bestie.test"
    password_hash = bcrypt.hashpw(b"Secret123!", bcrypt.gensalt(4)).decode()
    sql(
        "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, :h, 'admin')",
        e=email,
        h=password_hash,
    )
    staff = call("POST", "/internal/auth/login", body={"email": email, "password": "Secret123!"})["access_token"]

    session = call("POST", "/api/client/chat-sessions", token=token, body={"duration_minutes": 5})
    call("POST", f"/api/mitra/chat-sessions/{session['id']}/accept", token=mitra)
    call("POST", f"/internal/chat-sessions/{session['id']}/payment-confirmed", token=staff)
    sent = call(
        "POST",
        f"/api/client/chat-sessions/{session['id']}/messages",
        token=token,
        body={"client_message_id": str(uuid.uuid4()), "body": "halo"},
    )
    received = call("GET", f"/api/mitra/chat-sessions/{session['id']}/messages", token=mitra)
    assert sent["id"] in [m["id"] for m in received["messages"]], received
    ended = call("POST", f"/api/client/chat-sessions/{session['id']}/end", token=token)
    call("POST", "/api/mitra/status/offline", token=mitra)
    print(json.dumps({"seen": SEEN, "final_status": ended.get("status")}))


main()
