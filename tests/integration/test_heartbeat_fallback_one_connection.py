"""The heartbeat's Postgres fallback (mirror not seeded, or Valkey down) is one transaction on
one connection: the session check runs inside it, so it works on a pool of one connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared import availability
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.errors import Unauthorized
from tests.conftest import make_context
from tests.support.helpers import installed
from tests.support.mirror_state import new_mitra


@pytest.fixture
def one_connection_ctx(test_env: dict[str, str]) -> Iterator[AppContext]:
    """A context whose pool holds one connection (a second checkout would time out: 503)."""
    with installed(make_context(db_pool_size=1, db_pool_timeout_seconds=1)) as ctx:
        yield ctx


def _session(ctx: AppContext, mitra_id: str, *, revoked: bool) -> str:
    with ctx.db.transaction() as tx:
        sid = tx.scalar(
            "INSERT INTO auth_sessions (user_type, user_id, expires_at, revoked_at)"
            " VALUES ('mitra', CAST(:m AS uuid), now() + interval '1 hour', CASE WHEN :r THEN now() END) RETURNING id",
            m=mitra_id,
            r=revoked,
        )
        tx.commit()
    return str(sid)


def test_a_heartbeat_answered_from_postgres_uses_one_connection(one_connection_ctx: AppContext) -> None:
    ctx = one_connection_ctx
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    ctx.valkey.delete(ctx.keys.seeded)  # not seeded: the Postgres guard and write answer
    ctx.valkey.set(ctx.keys.seed_lock, "another-instance")  # and no seed runs meanwhile

    status = availability.heartbeat(ctx, Principal("mitra", m, _session(ctx, m, revoked=False)))

    assert status["online"] is True
    with ctx.db.transaction() as tx:
        assert (
            tx.scalar("SELECT last_heartbeat_at FROM mitras WHERE id = CAST(:m AS uuid)", m=m).isoformat()
            == (status["last_heartbeat_at"])
        )
    assert ctx.db.in_use == 0


def test_a_revoked_session_is_refused_by_the_one_connection_fallback(one_connection_ctx: AppContext) -> None:
    ctx = one_connection_ctx
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    ctx.valkey.delete(ctx.keys.seeded)
    ctx.valkey.set(ctx.keys.seed_lock, "another-instance")

    with pytest.raises(Unauthorized) as refused:
        availability.heartbeat(ctx, Principal("mitra", m, _session(ctx, m, revoked=True)))

    assert refused.value.code == "SESSION_REVOKED"
    assert ctx.db.in_use == 0
