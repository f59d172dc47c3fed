"""The clients the apps generate from openapi.yaml build with zero warnings and type-check real usage.

openapi-python-client (Python) and openapi-typescript with openapi-fetch (TypeScript) run on the
committed openapi.yaml; `usage.py` must pass `mypy --strict` against the generated package and
`usage.ts` must pass `tsc --strict` against the generated types (docs/api.md). The npm packages
are pinned by tests/clients/package-lock.json.

What depends only on pinned inputs is made once per machine and kept in a cache outside the
clone (`$XDG_CACHE_HOME/bestie-tests`, else ~/.cache), named by the hash of those inputs: the
installed npm packages (the lock) and the generated Python package with its generator's log
(openapi.yaml, the generator's settings and version). The checks themselves run every time:
the log has no warning, the package has every operation, mypy and tsc check the usage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPEC = REPO / "openapi.yaml"
BUILD = REPO / "build" / "clients"
BIN = Path(sys.executable).parent


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{argv[0]} failed:\n{output}"
    return output


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        reason = f"{tool} is not installed (Debian: apt-get install -y nodejs npm; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _cached(name: str) -> Iterator[tuple[Path, bool]]:
    """(the cache folder `name`, whether it is complete); the block fills it when it is not.

    One filler at a time per folder (a lock beside it), so two runs at once never see half of it;
    a block that raises leaves it incomplete, to be made again.
    """
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bestie-tests"
    root.mkdir(parents=True, exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        yield folder, done.exists()
        done.touch()


@pytest.fixture(scope="module")
def node_tools() -> Iterator[Path]:
    """A folder of this run's own (under build/clients) whose node_modules are the locked npm
    packages, installed once per lock into the cache."""
    _require("node")
    npm = _require("npm")
    lock = (HERE / "package-lock.json").read_bytes()
    with _cached(f"node-{_digest(lock)}") as (packages, complete):
        if not complete:
            for name in ("package.json", "package-lock.json"):
                shutil.copy(HERE / name, packages / name)
            _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], packages)
    home = BUILD / f"node-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, home / name)
    (home / "node_modules").symlink_to(packages / "node_modules")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_python_client_generates_without_warnings_and_usage_type_checks(tmp_path: Path) -> None:
    settings = HERE / "openapi-python-client.yaml"
    versions = f"{metadata.version('openapi-python-client')} {metadata.version('ruff')}".encode()
    inputs = (SPEC.read_bytes(), settings.read_bytes(), (REPO / "pyproject.toml").read_bytes(), versions)
    with _cached(f"python-client-{_digest(*inputs)}") as (made, complete):
        if not complete:
            # Generated inside the repository, where its ruff post-hooks read pyproject.toml.
            work = BUILD / f"python-{uuid.uuid4().hex[:8]}"
            work.mkdir(parents=True)
            env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff post-hooks
            try:
                log = _run(
                    [
                        *(str(BIN / "openapi-python-client"), "generate", "--path", str(SPEC), "--meta", "none"),
                        *("--config", str(settings), "--output-path", str(work / "bestie_client")),
                    ],
                    cwd=work,
                    env=env,
                )
                shutil.copytree(work / "bestie_client", made / "bestie_client")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            (made / "generate.log").write_text(log)
    log = (made / "generate.log").read_text()
    assert "warning" not in log.lower() and "error" not in log.lower(), log
    # every operation became a function in its audience's module
    sweeps = {p.stem for p in (made / "bestie_client" / "api" / "sweeps").glob("sweep_*.py")}
    assert sweeps >= {"sweep_auto_offline", "sweep_heartbeat_mirror", "sweep_session_expiry", "sweep_retention"}

    shutil.copytree(made / "bestie_client", tmp_path / "bestie_client")
    shutil.copy(HERE / "usage.py", tmp_path / "usage.py")
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    mypy = [str(BIN / "mypy"), "--config-file", "mypy.ini", "--cache-dir", str(BUILD / ".mypy_cache"), "usage.py"]
    _run(mypy, tmp_path)


def test_typescript_types_generate_without_warnings_and_usage_type_checks(node_tools: Path) -> None:
    bin_dir = node_tools / "node_modules" / ".bin"
    log = _run([str(bin_dir / "openapi-typescript"), str(SPEC), "-o", "schema.d.ts"], node_tools)
    assert "warn" not in log.lower() and "⚠" not in log, log
    shutil.copy(HERE / "usage.ts", node_tools / "usage.ts")
    _run(
        [
            *(str(bin_dir / "tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "esnext"),
            *("--moduleResolution", "bundler", "--skipLibCheck", "false", "usage.ts"),
        ],
        node_tools,
    )
