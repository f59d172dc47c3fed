"""Hostile input in every string field of every route that takes a body.

Each documented request body (openapi.yaml) is sent once per hostile class in each of its
string fields: a lone surrogate, NUL, an overlong string, control characters, numbers no
column can hold, and wrong JSON types. Every answer must be a 4xx with a JSON error code,
and afterwards the Postgres pool must be whole: nothing lent out, every connection in step.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra import openapi_norm
from shared import manifest
from shared.context import AppContext
from tests.support.apps import client
from tests.support.mirror_state import new_mitra
from tests.support.tokens import _token

REPO = Path(__file__).resolve().parents[2]
SPEC = openapi_norm.load_spec()

# Raw JSON text of each hostile value (so non-finite and oversized numbers can be sent at all).
HOSTILE: dict[str, str] = {
    "lone_surrogate": json.dumps("\udc00@x.com"),
    "lone_high_surrogate": json.dumps("abc\ud800"),
    "nul": json.dumps("ab\u0000cd"),
    "overlong": json.dumps("x" * 20_000),
    "control_chars": json.dumps("a\x1b[2J\x07b\x7f"),
    "huge_integer": "99999999999999999999999",
    "huge_float": "1e400",
    "negative_huge_float": "-1e400",
    "wrong_type_array": '["x"]',
    "wrong_type_object": '{"x": "\\u0000"}',
    "wrong_type_bool": "true",
}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _body_routes() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody") if isinstance(op, dict) else None
            if not body or "application/json" not in body["content"]:
                continue  # a form post (Apple's callback) has its own tests; this module sends JSON
            schema = _resolve(body["content"]["application/json"]["schema"])
            found.append((method.upper(), path, schema))
    return found


BODY_ROUTES = _body_routes()


def _plausible(prop: dict[str, Any]) -> Any:
    prop = _resolve(prop)
    if "enum" in prop:
        return prop["enum"][0]
    kind = prop.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "integer":
        return max(1, prop.get("minimum", 1))
    if kind == "boolean":
        return True
    if prop.get("format") == "uuid":
        return str(uuid.uuid4())
    return "Plausible1"


def _function(method: str, path: str) -> manifest.Function:
    route = "/".join(f":{s[1:-1]}" if s.startswith("{") else s for s in path.split("/"))
    return next(fn for fn in manifest.load().functions if fn.method == method and fn.route == route)


class Caller:
    """A fresh valid token of the route's user type on every request."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        with ctx.db.transaction() as tx:
            self.customer = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('h') RETURNING id"))
            self.admin = str(
                tx.scalar(
                    "INSERT INTO control_center_users (email, password_hash, role)"
                    " VALUES (:e, 'unused', 'admin') RETURNING id",
                    e=f"hostile-{uuid.uuid4().hex[:8]}@bestie.test",
                )
            )
            tx.commit()
        self.mitra = new_mitra(ctx)

    def headers(self, auth: str) -> dict[str, str]:
        if auth in ("customer", "any"):
            token = _token(self.ctx, "customer", self.customer)[0]
        elif auth == "mitra":
            token = _token(self.ctx, "mitra", self.mitra)[0]
        elif auth in ("cc", "cc_admin"):
            token = _token(self.ctx, "cc", self.admin, "admin")[0]
        else:
            token = ""
        headers = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def _send(caller: Caller, method: str, path: str, text: str) -> Any:
    fn = _function(method, path)
    url = path.replace("{id}", str(uuid.uuid4())).replace("{key}", "otp_ttl_seconds")
    return client(fn.entry_point).open(
        url, method=method, data=text, content_type="application/json", headers=caller.headers(fn.auth)
    )


def assert_pool_whole(ctx: AppContext) -> None:
    """Nothing lent out, and every slot can be taken at once by a connection in step."""
    db = ctx.db
    assert db.in_use == 0
    size = ctx.settings.db_pool_size
    with contextlib.ExitStack() as stack:
        txs = [stack.enter_context(db.transaction()) for _ in range(size)]
        for i, tx in enumerate(txs):
            assert tx.scalar("SELECT CAST(:n AS int) * 2", n=i) == 2 * i
    assert db.in_use == 0 and db.idle_connections == db.open_connections <= size


@pytest.mark.parametrize("method,path,schema", BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES])
def test_hostile_values_in_every_field_are_a_json_4xx_and_leave_the_pool_whole(ctx, method, path, schema):
    caller = Caller(ctx)
    props = schema.get("properties", {})
    base = {name: _plausible(prop) for name, prop in props.items()}
    assert props, f"{method} {path} documents no body fields"
    answered = []
    for name, prop in props.items():
        prop = _resolve(prop)
        kinds = prop.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        classes = HOSTILE if "string" in kinds else {k: v for k, v in HOSTILE.items() if not k.startswith("wrong")}
        for label, raw in classes.items():
            others = ",".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in base.items() if k != name)
            text = "{" + (others + "," if others else "") + f"{json.dumps(name)}: {raw}" + "}"
            resp = _send(caller, method, path, text)
            answered.append((name, label, resp.status_code))
            assert 400 <= resp.status_code < 500, (name, label, resp.status_code, resp.get_data(as_text=True)[:300])
            assert resp.mimetype == "application/json", (name, label)
            assert resp.json["error"]["code"], (name, label)
    assert answered
    assert_pool_whole(ctx)


# ---- crafted cursors on every paged list ----------------------------------------------------

# Timestamps Python parses whose conversion to UTC leaves datetime's range (year 1..9999).
EDGE_TIMESTAMPS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


def _paged_lists() -> list[tuple[str, str | None, str]]:
    """(path, view, the list's cursor kind) of every documented list taking a `cursor`."""
    found = []
    for path, item in SPEC["paths"].items():
        params = {p["name"]: p for p in map(_resolve, item.get("get", {}).get("parameters", []))}
        if "cursor" not in params:
            continue
        views = _resolve(params["view"]["schema"])["enum"] if "view" in params else [None]
        for view in views:
            side = {"/api/client/": "customer", "/api/mitra/": "mitra"}.get(path[: path.index("/", 5) + 1])
            found.append((path, view, f"sessions-{side}-{view}" if side else path.rsplit("/", 1)[-1]))
    return found


# Lists whose cursor is keyed by a row id (bigint), not by a time: (path, cursor kind, whether
# the cursor also names the path's session).
ID_KEYED_LISTS = {
    "/internal/chat-sessions/{id}/messages": ("chat-session-messages", True),
    "/internal/audit-log": ("audit-log", False),
    "/internal/mitras/{id}/logs": ("mitra_logs", False),
}
PAGED_LISTS = [entry for entry in _paged_lists() if entry[0] not in ID_KEYED_LISTS]


def _cursor(kind: str, *values: str) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_there_are_eight_time_keyed_paged_lists_in_five_routes_and_three_id_keyed_ones():
    assert len(PAGED_LISTS) == 8 and len({path for path, _, _ in PAGED_LISTS}) == 5
    assert {path for path, _, _ in _paged_lists()} - {path for path, _, _ in PAGED_LISTS} == set(ID_KEYED_LISTS)


@pytest.mark.parametrize("path,view,kind", PAGED_LISTS, ids=[f"{p} {v}" for p, v, _ in PAGED_LISTS])
def test_a_cursor_at_the_edge_of_the_calendar_is_a_400_naming_cursor_and_loses_no_connection(ctx, path, view, kind):
    caller = Caller(ctx)
    fn = _function("GET", path)
    assert_pool_whole(ctx)
    opened = ctx.db.open_connections
    crafted = [_cursor(kind, at, str(uuid.uuid4())) for at in EDGE_TIMESTAMPS]
    crafted.append(_cursor(kind, "2026-11-28T10:00:00+00:00", str(uuid.uuid4())))  # a cursor in range: 200
    answers = []
    for cursor in crafted:
        query = {"cursor": cursor, **({"view": view} if view else {})}
        resp = client(fn.entry_point).get(path, query_string=query, headers=caller.headers(fn.auth))
        answers.append(resp.status_code)
        if resp.status_code == 400:
            assert resp.json["error"]["field"] == "cursor", resp.json
    assert answers == [400, 400, 200]
    assert ctx.db.open_connections == opened  # none discarded
    assert_pool_whole(ctx)


# Row ids Python parses as integers that Postgres's bigint cannot hold (or no row id can be).
EDGE_IDS = (2**63, -(2**63) - 1, 10**30, -1)


@pytest.mark.parametrize("path", sorted(ID_KEYED_LISTS))
def test_a_cursor_with_an_id_outside_bigint_is_a_400_naming_cursor_and_loses_no_connection(ctx, path):
    caller = Caller(ctx)
    fn = _function("GET", path)
    kind, names_session = ID_KEYED_LISTS[path]
    session = str(uuid.uuid4())
    # A transcript's id is a session's (none here: 404 in range); the logs' a mitra's (the caller's).
    url = path.replace("{id}", session if names_session else caller.mitra)
    assert_pool_whole(ctx)
    opened = ctx.db.open_connections
    answers = []
    for row_id in (*EDGE_IDS, 5):  # the last one is in range
        cursor = _cursor(kind, *([session] if names_session else []), str(row_id))
        resp = client(fn.entry_point).get(url, query_string={"cursor": cursor}, headers=caller.headers(fn.auth))
        answers.append(resp.status_code)
        if resp.status_code == 400:
            assert resp.json["error"]["field"] == "cursor", resp.json
    # In range, the transcript of a session that does not exist is 404; the audit log answers.
    assert answers == [400] * len(EDGE_IDS) + [404 if names_session else 200]
    assert ctx.db.open_connections == opened  # none discarded
    assert_pool_whole(ctx)


# ---- chat text that hides or reorders what the reader sees ---------------------------------------

CHAT_TEXT = {
    "invisible_only": "\u200b\ufeff\u3164",
    "bidi_override": "invoice \u202egpj.exe",
    "bidi_isolate": "a\u2066b\u2069",
    "tag_characters": "hi\U000e0041\U000e007f",
    "c1_control": "a\u0085b",
    "del": "a\u007fb",
}


@pytest.mark.parametrize("path", ["/api/client/chat-sessions/{id}/messages", "/api/mitra/chat-sessions/{id}/messages"])
def test_chat_text_that_hides_or_reorders_what_is_shown_is_a_400_naming_body(ctx, path):
    caller = Caller(ctx)
    for label, text in CHAT_TEXT.items():
        body = json.dumps({"client_message_id": str(uuid.uuid4()), "body": text})
        resp = _send(caller, "POST", path, body)
        assert resp.status_code == 400, (label, resp.get_data(as_text=True)[:300])
        assert resp.json["error"]["field"] == "body", label
    assert_pool_whole(ctx)


# ---- 1,000 unauthenticated hostile requests among normal traffic -------------------------------


def _hostile_requests() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(entry point, method, path, open() kwargs) of unauthenticated hostile requests."""

    def body(text: str) -> dict[str, Any]:
        return {"data": text, "content_type": "application/json"}

    return [
        ("auth_cc_login", "POST", "/internal/auth/login", body('{"email":"\\udc00@x.com","password":"x"}')),
        ("auth_refresh", "POST", "/api/shared/auth/refresh", body('{"refresh_token":"\\ud800\\u0000"}')),
        ("test_seed_mitra", "POST", "/internal/_test/seed-mitra", body('{"phone":"1","display_name":"\\u0000"}')),
        ("auth_client_otp_request", "POST", "/api/client/auth/otp/request", body('{"phone":"\\udfff"}')),
        ("auth_mitra_otp_verify", "POST", "/api/mitra/auth/otp/verify", body('{"request_id":"\\u0000","code":1e400}')),
        ("app_config_put", "PUT", "/internal/app-config/otp_ttl_seconds", body('{"value":1e400}')),
        ("mitras_logs", "GET", "/internal/mitras/%0A/logs", {}),
        ("auth_refresh", "POST", "/api/shared/auth/refresh", body("[" * 5000)),
        ("auth_anonymous", "POST", "/api/shared/auth/anonymous", {"headers": {"User-Agent": "x\x00\udc00"}}),
    ]


def _normal_flow(latencies: list[float]) -> None:
    """Seed a mitra and sign a customer in, name them, read them back: every answer must be right."""
    phone = f"+62819{uuid.uuid4().int % 10**8:08d}"
    name = f"Name {uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    seeded = client("test_seed_mitra").post("/internal/_test/seed-mitra", json={"phone": phone, "display_name": name})
    latencies.append(time.perf_counter() - started)
    assert seeded.status_code == 201 and seeded.json["phone"] == phone and seeded.json["display_name"] == name

    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    started = time.perf_counter()
    signed = client("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": ip})
    latencies.append(time.perf_counter() - started)
    assert signed.status_code == 201, signed.get_data(as_text=True)
    auth = {"Authorization": f"Bearer {signed.json['access_token']}"}
    started = time.perf_counter()
    named = client("auth_client_profile").patch("/api/client/auth/profile", json={"display_name": name}, headers=auth)
    latencies.append(time.perf_counter() - started)
    assert named.status_code == 200 and named.json["display_name"] == name
    started = time.perf_counter()
    me = client("auth_client_me").get("/api/client/auth/me", headers=auth)
    latencies.append(time.perf_counter() - started)
    assert me.status_code == 200
    assert me.json["id"] == signed.json["user"]["id"] and me.json["display_name"] == name


def test_thousand_hostile_requests_leave_normal_traffic_correct_and_the_pool_full(ctx):
    hostile = _hostile_requests()
    total, hostile_threads = 1000, 6
    statuses: list[int] = []
    errors: list[BaseException] = []
    normal_latencies: list[float] = []
    flows = [0]
    done = threading.Event()
    lock = threading.Lock()

    def attack(offset: int) -> None:
        try:
            for i in range(offset, total, hostile_threads):
                entry, method, path, kwargs = hostile[i % len(hostile)]
                kwargs = {
                    **kwargs,
                    "headers": {"X-Forwarded-For": f"10.66.{i % 250}.{i // 250 + 1}", **kwargs.get("headers", {})},
                }
                resp = client(entry).open(path, method=method, **kwargs)
                assert resp.status_code < 500, (entry, resp.status_code, resp.get_data(as_text=True)[:200])
                assert resp.status_code == 201 or (resp.mimetype == "application/json" and resp.json["error"]["code"])
                with lock:
                    statuses.append(resp.status_code)
        except BaseException as exc:
            errors.append(exc)

    def serve() -> None:
        try:
            while not done.is_set():
                _normal_flow(normal_latencies)
                with lock:
                    flows[0] += 1
        except BaseException as exc:
            errors.append(exc)

    normal_entries = {"test_seed_mitra", "auth_anonymous", "auth_client_profile", "auth_client_me"}
    for entry in {h[0] for h in hostile} | normal_entries:
        client(entry)  # build each app (functions-framework create_app) before anything is timed
    started = time.perf_counter()
    attackers = [threading.Thread(target=attack, args=(n,)) for n in range(hostile_threads)]
    servers = [threading.Thread(target=serve) for _ in range(3)]
    for t in attackers + servers:
        t.start()
    for t in attackers:
        t.join()
    done.set()
    for t in servers:
        t.join()
    elapsed = time.perf_counter() - started

    assert errors == []
    assert len(statuses) == total
    assert flows[0] >= 3
    assert_pool_whole(ctx)
    ordered = sorted(normal_latencies)
    p50, p95 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]
    print(
        f"\n{total} hostile + {flows[0]} normal flows ({len(ordered)} normal requests) in {elapsed:.1f} s;"
        f" normal p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms,"
        f" max {ordered[-1] * 1000:.1f} ms; pool open {ctx.db.open_connections}/{ctx.settings.db_pool_size}, in use"
        f" {ctx.db.in_use}; hostile statuses {sorted(set(statuses))}"
    )
