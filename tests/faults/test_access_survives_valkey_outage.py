"""A logout, a deactivation or a password reset made while Valkey is paused, down or out of
reach of the instance that made it must hold once Valkey is back, whether it comes back with
its old data (which still says `seeded` but lacks the revocation) or empty, and in an instance
that made no call during the outage, asked *first* (before the active one repairs the mirror).

A heartbeat answered from Postgres during such a fault shows the same last-seen in the other
instance.

The idle instance is asked once the access check's bound has passed since the last revocation
committed (docs/availability.md, "Outages and access")."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
import redis
import requests

from infra.embedded import EmbeddedValkey
from shared import availability, context
from shared.auth import cc_users
from shared.auth.principal import Principal
from shared.availability import access, mirror
from shared.context import AppContext
from tests.support import apps, server_process
from tests.support.mirror_state import new_mitra
from tests.support.tokens import bearer, mitra_token


@pytest.fixture
def valkey(tmp_path) -> Iterator[EmbeddedValkey]:
    """A Valkey of this test's own with an append-only file, so a restart keeps its data."""
    server = EmbeddedValkey(tmp_path / "valkey", persistent=True).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


ORIGIN = "https://cc.example.test"


class Cuttable:
    """A loopback TCP forwarder to Valkey that can drop every connection through it and refuse
    new ones: one instance losing Valkey while the others keep their connections."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Close every connection through the forwarder and refuse new ones until `restore`."""
        self.cut = True
        with self.lock:
            dropped, self.open = self.open, []
        for s in dropped:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.cut = False

    def close(self) -> None:
        self.drop()
        self.listener.close()


def _on(ctx: AppContext, url: str) -> AppContext:
    """Another instance: same database, clock and key prefix, its own Valkey pool."""
    return AppContext(dataclasses.replace(ctx.settings, valkey_url=url, valkey_timeout_seconds=0.3), clock=ctx.clock)


@dataclasses.dataclass
class World:
    ctx: AppContext  # reaches Valkey through `link`
    idle: AppContext  # an instance that makes no call while Valkey is away
    customer: dict[str, str]
    mitra: dict[str, str]
    staff: dict[str, str]
    link: Cuttable
    committed_at: float = 0.0  # time.monotonic() when the last revocation committed


@pytest.fixture
def world(isolated_ctx: AppContext, valkey: EmbeddedValkey) -> Iterator[World]:
    link = Cuttable(valkey.port)
    ctx = _on(isolated_ctx, link.url)
    idle = _on(isolated_ctx, valkey.url)
    try:
        with serving(ctx):
            availability.ensure_seeded(ctx)
            customer = apps.client("auth_anonymous").post("/api/shared/auth/anonymous").json
            mitra_id = new_mitra(ctx)
            availability.set_online(ctx, mitra_id, "test")
            mitra, _ = mitra_token(ctx, mitra_id)
            email = f"staff-{os.urandom(4).hex()}@bestie.test"
            staff_user = cc_users.create_user(ctx, email, "Secret123", "operator")
            staff = apps.client("auth_cc_login").post(
                "/internal/auth/login", json={"email": email, "password": "Secret123"}, headers={"Origin": ORIGIN}
            )
        w = World(
            ctx,
            idle,
            {"token": customer["access_token"]},
            {"token": mitra, "id": mitra_id},
            {"token": staff.json["access_token"], "id": staff_user["id"]},
            link,
        )
        # Everything works, answered by the mirror, in both instances.
        for instance in (ctx, idle):
            with serving(instance):
                assert (_customer_me(w), _mitra_beat(w), _staff_me(w)) == (200, 200, 200)
                assert access.mirror_trusted(instance)
        with serving(ctx):
            yield w
    finally:
        ctx.close()
        idle.close()
        link.close()


@contextlib.contextmanager
def serving(instance: AppContext) -> Iterator[AppContext]:
    """Make `instance` the process-wide context for the block (it stays open)."""
    context.install(instance)
    try:
        yield instance
    finally:
        context.install(None)


def _customer_me(w: World) -> int:
    return apps.client("auth_client_me").get("/api/client/auth/me", headers=bearer(w.customer["token"])).status_code


def _mitra_beat(w: World) -> int:
    return (
        apps.client("mitra_status_heartbeat")
        .post("/api/mitra/status/heartbeat", headers=bearer(w.mitra["token"]))
        .status_code
    )


def _mitra_status(w: World) -> int:
    return apps.client("mitra_status_get").get("/api/mitra/status", headers=bearer(w.mitra["token"])).status_code


def _staff_me(w: World) -> int:
    return apps.client("auth_cc_me").get("/internal/auth/me", headers=bearer(w.staff["token"])).status_code


def _take_access_away(w: World) -> None:
    """Logout (customer), deactivation (mitra), password reset (staff): all while Valkey is away."""
    out = apps.client("auth_logout").post("/api/shared/auth/logout", headers=bearer(w.customer["token"]))
    assert out.status_code == 204
    availability.deactivate(w.ctx, w.mitra["id"], "cc:test")
    admin = Principal("cc", "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", "admin")
    assert cc_users.reset_password(w.ctx, admin, w.staff["id"], "Changed123") >= 1
    w.committed_at = time.monotonic()


def _refused_everywhere(w: World) -> None:
    """The idle instance first, once the check's bound has passed since the last commit."""
    time.sleep(max(0.0, w.committed_at + access.CHECK_SECONDS - time.monotonic()))
    for instance in (w.idle, w.ctx):
        with serving(instance):
            assert _customer_me(w) == 401
            assert _mitra_beat(w) in (401, 403)
            assert _mitra_status(w) == 403  # ACCOUNT_INACTIVE: a deactivated mitra is told so (docs/auth.md)
            assert _staff_me(w) == 401


def test_access_taken_away_while_valkey_is_paused_holds_after_it_resumes(world: World, valkey: EmbeddedValkey):
    assert valkey.proc is not None
    os.kill(valkey.proc.pid, signal.SIGSTOP)
    try:
        _take_access_away(world)
        assert _customer_me(world) == 401  # during the pause: the Postgres fallback
    finally:
        os.kill(valkey.proc.pid, signal.SIGCONT)
    _refused_everywhere(world)
    # The next call that reached Valkey repaired it: the marks are in the mirror again.
    assert world.ctx.valkey.sismember(world.ctx.keys.deactivated, world.mitra["id"])
    assert access.mirror_trusted(world.ctx)


@pytest.mark.parametrize(
    ("signal_", "with_data"),
    [(signal.SIGTERM, True), (signal.SIGKILL, True), (signal.SIGKILL, False)],
    ids=["stopped-restored-with-its-data", "killed-restored-with-its-data", "killed-restored-empty"],
)
def test_access_taken_away_while_valkey_is_down_holds_after_it_is_back(
    world: World, valkey: EmbeddedValkey, signal_: int, with_data: bool
):
    assert valkey.proc is not None
    valkey.proc.send_signal(signal_)
    valkey.proc.wait(10)
    valkey.stop()
    _take_access_away(world)
    assert _customer_me(world) == 401  # during the outage: the Postgres fallback
    if not with_data:
        for aof in (valkey.data_dir).glob("appendonly*"):
            if aof.is_dir():
                for part in aof.iterdir():
                    part.unlink()
            else:
                aof.unlink()
    valkey.start()
    if with_data:
        assert world.ctx.valkey.exists(world.ctx.keys.seeded)  # the old mirror is back and claims to be whole
    _refused_everywhere(world)
    for _ in range(2):  # still refused once the mirror has been repaired or reseeded
        _refused_everywhere(world)


def test_access_taken_away_by_an_instance_that_lost_valkey_holds_in_the_others(world: World):
    """Only the active instance's connections drop (and it cannot reconnect): Valkey itself is
    fine, so the idle instance's pooled connection lives on and nothing in Valkey changed."""
    world.link.drop()
    try:
        _take_access_away(world)
        assert _customer_me(world) == 401  # the active instance: the Postgres fallback
    finally:
        world.link.restore()
    _refused_everywhere(world)


def _beat(w: World) -> str:
    resp = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=bearer(w.mitra["token"]))
    assert resp.status_code == 200, resp.json
    return str(resp.json["last_heartbeat_at"])


def _last_seen(w: World) -> str:
    resp = apps.client("mitra_status_get").get("/api/mitra/status", headers=bearer(w.mitra["token"]))
    assert resp.status_code == 200, resp.json
    return str(resp.json["last_heartbeat_at"])


def test_a_ping_answered_from_postgres_while_repairing_reaches_the_other_instance(world: World, monkeypatch):
    """The answering instance distrusts the mirror: its repair has read Postgres (before this
    ping) and not yet written Valkey. Valkey itself is fine."""
    state = access._trust(world.ctx)
    access.mark_suspect(world.ctx)
    replay, read_postgres, resume = mirror.replay_pings, threading.Event(), threading.Event()

    def held_replay(ctx: AppContext, pings: list[tuple[str, int]]) -> int:
        if threading.current_thread() is repairing:  # the repair, after its Postgres reads
            read_postgres.set()
            resume.wait(10)
        return replay(ctx, pings)

    monkeypatch.setattr(mirror, "replay_pings", held_replay)
    repairing = threading.Thread(target=access.trust, args=(world.ctx,))
    repairing.start()
    try:
        assert read_postgres.wait(10) and state.repairing
        world.ctx.clock.advance(5)  # type: ignore[attr-defined]
        answered = _beat(world)  # from Postgres: the mirror is not trusted yet
    finally:
        resume.set()
        repairing.join(10)
    with serving(world.idle):
        assert _last_seen(world) == answered


@pytest.mark.parametrize("fault", ["paused", "dropped"])
def test_a_ping_answered_from_postgres_during_a_valkey_fault_reaches_the_idle_instance(
    world: World, valkey: EmbeddedValkey, fault: str
):
    """Paused: the timed-out script may still run when Valkey resumes. Dropped: the answering
    instance's connections are gone, so the ping exists in Postgres only."""
    assert valkey.proc is not None
    world.ctx.clock.advance(5)  # type: ignore[attr-defined]
    if fault == "paused":
        os.kill(valkey.proc.pid, signal.SIGSTOP)
    else:
        world.link.drop()
    try:
        answered = _beat(world)  # Valkey failed: from Postgres
    finally:
        os.kill(valkey.proc.pid, signal.SIGCONT)
        world.link.restore()
    committed_at = time.monotonic()
    time.sleep(max(0.0, committed_at + access.CHECK_SECONDS - time.monotonic()))
    with serving(world.idle):
        assert _last_seen(world) == answered  # asked first, before the answering instance repairs


def test_a_new_valkey_connection_alone_makes_an_instance_repair_before_it_trusts(world: World, valkey: EmbeddedValkey):
    """A server that lost a mark and dropped every connection: redis-py's retry reconnects
    without an error reaching the code, so only the new connection says the mirror may differ."""
    out = apps.client("auth_logout").post("/api/shared/auth/logout", headers=bearer(world.customer["token"]))
    assert out.status_code == 204
    admin = redis.Redis.from_url(valkey.url)
    try:
        sid = _session_of(world.customer["token"])
        assert admin.delete(world.ctx.keys.revoked(sid)) == 1  # the mark was written, then lost
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 2
    finally:
        admin.close()
    for instance in (world.idle, world.ctx):
        with serving(instance):
            assert _customer_me(world) == 401


def _session_of(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["sid"])


def _http(base: str, method: str, path: str, token: str) -> int:
    return requests.request(method, f"{base}{path}", headers=bearer(token), timeout=30).status_code


def _asked_over_http(w: World, base: str) -> tuple[int, int, int]:
    return (
        _http(base, "GET", "/api/client/auth/me", w.customer["token"]),
        _http(base, "GET", "/api/mitra/status", w.mitra["token"]),
        _http(base, "GET", "/internal/auth/me", w.staff["token"]),
    )


def test_two_server_processes_the_idle_one_refuses_first_after_a_pause(world: World, valkey: EmbeddedValkey):
    """The same through two server processes (their own pools and trust), the deployed timeouts:
    the logout goes through the first process, the deactivation and the reset through a third
    instance; the second process makes no call during the pause and is asked first."""
    assert valkey.proc is not None
    with (
        server_process.server(world.idle, ("auth", "heartbeat")) as first,
        server_process.server(world.idle, ("auth", "heartbeat")) as idle,
    ):
        for base in (first, idle):
            assert _asked_over_http(world, base) == (200, 200, 200)
        os.kill(valkey.proc.pid, signal.SIGSTOP)
        try:
            assert _http(first, "POST", "/api/shared/auth/logout", world.customer["token"]) == 204
            availability.deactivate(world.ctx, world.mitra["id"], "cc:test")
            admin = Principal(
                "cc", "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", "admin"
            )
            assert cc_users.reset_password(world.ctx, admin, world.staff["id"], "Changed123") >= 1
            committed_at = time.monotonic()
        finally:
            os.kill(valkey.proc.pid, signal.SIGCONT)
        time.sleep(max(0.0, committed_at + access.CHECK_SECONDS - time.monotonic()))
        assert _asked_over_http(world, idle) == (401, 403, 401)
        assert _asked_over_http(world, first) == (401, 403, 401)
