"""The isolated-database fixture really isolates (other tests rely on it for global counts)."""

import uuid

from shared import app_config


def test_isolated_database_starts_empty_and_migrated(isolated_ctx, ctx):
    phone = f"+62812{uuid.uuid4().int % 10**8:08d}"
    with ctx.db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'elsewhere')", p=phone)
        tx.commit()
    assert isolated_ctx.db.scalar("SELECT count(*) FROM mitras") == 0
    assert isolated_ctx.db.scalar("SELECT count(*) FROM app_config") == len(app_config.DEFAULTS)
