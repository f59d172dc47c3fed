"""The restore drill: Postgres restored from a dump, Valkey empty, and the system is whole.

docs/operations.md runs the same drill against Cloud SQL. Here the dump is `pg_dump -Fc` of a
database that saw a chat, a logout and a block, restored with `pg_restore` into a new database;
the new instance starts on it with an empty Valkey, as after losing both. It must find every
session, message and block, refuse every token revoked before the dump (nothing revoked comes
back), and serve a mitra's heartbeat from a reseeded mirror.
"""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra import embedded
from shared import availability, context
from shared.context import AppContext
from tests.conftest import _admin_connection, _url_for
from tests.support import apps
from tests.support.chat_support import Pair, active_session, receive, send
from tests.support.tokens import bearer, cc_token


def _pg(tool: str) -> str:
    return str(embedded.postgres_bin_dir() / tool)


@dataclasses.dataclass
class Before:
    pair: Pair
    logged_out: dict[str, str]
    blocked: dict[str, str]
    bodies: list[str]


def _life_before_the_loss(ctx: AppContext) -> Before:
    pair = active_session(ctx)
    bodies = [f"message {n}" for n in range(3)]
    for body in bodies:
        assert send("client", pair.customer, pair.session_id, body).status_code == 201
    logged_out = apps.client("auth_anonymous").post("/api/shared/auth/anonymous").json
    headers = bearer(logged_out["access_token"])
    assert apps.client("auth_logout").post("/api/shared/auth/logout", headers=headers).status_code == 204
    blocked = apps.client("auth_anonymous").post("/api/shared/auth/anonymous").json
    blocked_headers = bearer(blocked["access_token"])
    resp = apps.client("customers_block").post(
        f"/internal/customers/{blocked['user']['id']}/block", json={"reason": "drill"}, headers=bearer(cc_token(ctx))
    )
    assert resp.status_code == 200
    return Before(pair, headers, blocked_headers, bodies)


@pytest.fixture
def restored_url(test_env: dict[str, str]) -> Iterator[str]:
    """An empty database to restore into, dropped afterwards."""
    name = f"restored_{uuid.uuid4().hex[:10]}"
    with _admin_connection(test_env["DATABASE_URL"]) as admin:
        admin.run(f"CREATE DATABASE {name}")
    try:
        yield _url_for(test_env["DATABASE_URL"], name)
    finally:
        with _admin_connection(test_env["DATABASE_URL"]) as admin:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _dump_and_restore(source_url: str, target_url: str, dump: Path) -> None:
    subprocess.run([_pg("pg_dump"), "-Fc", "-f", str(dump), "-d", source_url], check=True, capture_output=True)
    subprocess.run([_pg("pg_restore"), "--no-owner", "-d", target_url, str(dump)], check=True, capture_output=True)


def _me(headers: dict[str, str]) -> int:
    return int(apps.client("auth_client_me").get("/api/client/auth/me", headers=headers).status_code)


def test_a_restored_database_with_an_empty_valkey_keeps_sessions_messages_blocks_and_revocations(
    isolated_ctx: AppContext, own_valkey: embedded.EmbeddedValkey, restored_url: str, tmp_path: Path
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    availability.ensure_seeded(ctx)
    before = _life_before_the_loss(ctx)
    # A blocked customer's token is 403 ACCOUNT_BLOCKED (docs/auth.md, "Account states").
    assert (_me(before.logged_out), _me(before.blocked), _me(before.pair.customer)) == (401, 403, 200)

    _dump_and_restore(ctx.settings.database_url or "", restored_url, tmp_path / "bestie.dump")
    redis.Redis.from_url(own_valkey.url).flushall()  # Valkey is lost too: the new instance starts on an empty one
    restored = AppContext(dataclasses.replace(ctx.settings, database_url=restored_url), clock=ctx.clock)
    context.install(restored)

    # Asked first, before anything reseeds: nothing revoked or blocked comes back.
    assert (_me(before.logged_out), _me(before.blocked)) == (401, 403)
    assert _me(before.pair.customer) == 200
    # The chat is whole: the session is active and its messages read back in order.
    messages = receive("client", before.pair.customer, before.pair.session_id).json
    texts = [m["body"] for m in messages["messages"] if m["sender_type"] == "customer"]
    assert texts == before.bodies
    assert messages["session_status"] == "active"
    # The mitra's heartbeat is served, and the mirror is seeded again from the restored truth.
    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=before.pair.mitra)
    assert beat.status_code == 200
    availability.ensure_seeded(restored)
    assert (
        restored.valkey.hget(restored.keys.used, before.pair.mitra_id) == "1"
    )  # the active session holds its capacity
