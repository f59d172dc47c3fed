"""The clients the apps generate from openapi.yaml build with zero warnings and type-check real usage.

openapi-python-client (Python) and openapi-typescript with openapi-fetch (TypeScript) run on the
committed openapi.yaml; `usage.py` must pass `mypy --strict` against the generated package and
`usage.ts` must pass `tsc --strict` against the generated types (docs/api.md). The npm packages
are pinned by tests/clients/package-lock.json and installed once under build/clients/node.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="module")
def node_tools() -> Path:
    """build/clients/node with the locked npm packages, reinstalled only when the lock changes."""
    _require("node")
    npm = _require("npm")
    home = BUILD / "node"
    lock = (HERE / "package-lock.json").read_bytes()
    stamp = home / f".installed-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, home / name)
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], home)
        stamp.touch()
    return home


def test_python_client_generates_without_warnings_and_usage_type_checks() -> None:
    out = BUILD / "python"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff post-hooks
    log = _run(
        [
            *(str(BIN / "openapi-python-client"), "generate", "--path", str(SPEC), "--meta", "none"),
            *("--config", str(HERE / "openapi-python-client.yaml"), "--output-path", str(out / "bestie_client")),
        ],
        cwd=out,
        env=env,
    )
    assert "warning" not in log.lower() and "error" not in log.lower(), log
    # every operation became a function in its audience's module
    sweeps = {p.stem for p in (out / "bestie_client" / "api" / "sweeps").glob("sweep_*.py")}
    assert sweeps >= {"sweep_auto_offline", "sweep_heartbeat_mirror", "sweep_session_expiry", "sweep_retention"}

    shutil.copy(HERE / "usage.py", out / "usage.py")
    (out / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    _run([str(BIN / "mypy"), "--config-file", "mypy.ini", "--cache-dir", str(BUILD / ".mypy_cache"), "usage.py"], out)


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
