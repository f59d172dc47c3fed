"""Per-group deploy bundles: `build/<group>/` is a self-contained Cloud Functions source folder.

A bundle holds the group's `main.py`, a copy of `shared/` (vendored), the manifest written as
`shared/functions.json` (where `shared.manifest` looks first), the release version as
`shared/release.json` (shared.release) and a `requirements.txt` with
only the pinned distributions that group can import. Nothing outside the folder is needed:
`tests/integration/test_bundle_vendoring.py` imports each bundle in a fresh interpreter that
sees only the folder and site-packages.

How the requirements are derived (no hand-kept lists):
1. Start at `functions/<group>/main.py` and follow every `shared.*` module it reaches.
   All import statements of a module count, wherever they sit: a lazy `import firebase_admin`
   inside a function body is found because the whole syntax tree is walked, not only the
   top level. Only real import statements count: the code names its modules directly
   (no registry of module paths in strings), so the walk needs no special cases.
2. Map each third-party module to the distribution that installed its files in this venv
   (longest package prefix wins, so `google.cloud.scheduler_v1` maps to
   google-cloud-scheduler, not to another `google.*` distribution).
3. Map each distribution to the `requirements.txt` line that pins it, or to the pinned
   requirement that pulls it in (flask -> functions-framework). An import nothing pins is an
   error, so a forgotten dependency fails `make bundle`, not the first cold start.

Heavy optional packages (firebase_admin, google.cloud.scheduler, google.cloud.sql.connector)
therefore land in a bundle only when a module that bundle reaches imports them.
`migrations/` is not bundled: schema changes roll out with `python -m infra.migrate`.

Run: `python -m infra.bundle [--out build] [GROUP ...]` or `make bundle`.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared import manifest

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO / "functions"
SHARED_DIR = REPO / "shared"
REQUIREMENTS = REPO / "requirements.txt"
DEFAULT_OUT = REPO / "build"

# Always required: the Cloud Functions Python runtime serves the bundle through it.
ALWAYS = ("functions-framework",)

_IGNORED_COPY = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".mypy_cache", "functions.toml", "functions.json", "release.json"
)


class BundleError(RuntimeError):
    """Raised when a bundle cannot be built (missing group, unpinned import, bad import)."""


@dataclass(frozen=True)
class Bundle:
    """What `build()` produced for one group."""

    group: str
    path: Path
    requirements: tuple[str, ...]
    modules: tuple[str, ...]  # the shared.* modules main.py can reach


# ---- reachability ---------------------------------------------------------------------------


def _module_file(name: str, shared_dir: Path) -> Path | None:
    """The source file of a `shared.*` module, or None when it does not exist."""
    base = os.path.join(shared_dir, *name.split(".")[1:])
    for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
        if os.path.isfile(candidate):
            return Path(candidate)
    return shared_dir / "__init__.py" if name == "shared" else None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(path: Path, module: str) -> set[str]:
    """All module names a file imports, at any depth of its syntax tree."""
    return set(_imports_of_source(path.read_text(), str(path), _package_of(module, path) if module else ""))


@functools.lru_cache(maxsize=4096)
def syntax_nodes(source: str, filename: str) -> tuple[ast.AST, ...]:
    """Every node of one file's syntax tree, parsed and walked once per process: a plan reads the
    same files for every group, for their imports (here) and for the environment variables they
    read (infra.deploy.needs). Keyed by the text, so an edited file is parsed again."""
    return tuple(ast.walk(ast.parse(source, filename=filename)))


@functools.lru_cache(maxsize=4096)
def _imports_of_source(source: str, filename: str, package: str) -> frozenset[str]:
    """_imports of one file's text."""
    found: set[str] = set()
    for node in syntax_nodes(source, filename):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # `from pkg import name` imports pkg and maybe the submodule pkg.name; the name is
            # resolved later, falling back to pkg when it is not a module.
            found.update(f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names)
    return frozenset(found)


def reachable(main_py: Path, shared_dir: Path = SHARED_DIR) -> tuple[list[str], set[str]]:
    """The shared modules `main_py` can load, and every third-party module name they import."""
    seen: dict[str, Path] = {}
    files: dict[str, Path | None] = {}  # module name -> _module_file, looked up once per walk
    external: set[str] = set()
    todo: list[tuple[str, Path]] = [("", main_py)]
    while todo:
        module, path = todo.pop()
        for name in sorted(_imports(path, module)):
            top = name.split(".")[0]
            if top == "shared":
                _follow_shared(name, origin=path, seen=seen, files=files, todo=todo, shared_dir=shared_dir)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                external.add(name)
    return sorted(seen), external


def _follow_shared(
    name: str,
    *,
    origin: Path,
    seen: dict[str, Path],
    files: dict[str, Path | None],
    todo: list[tuple[str, Path]],
    shared_dir: Path,
) -> None:
    """Queue `name` and its parent packages (each runs its __init__ first)."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        sub = ".".join(parts[:depth])
        if sub not in files:
            files[sub] = _module_file(sub, shared_dir)
        file = files[sub]
        if file is None:
            if depth == len(parts):
                return  # `from shared.x import function`: the last part is not a module
            raise BundleError(f"{origin} imports {name}, but {sub} is not in shared/")
        if sub not in seen:
            seen[sub] = file
            todo.append((sub, file))


# ---- distributions --------------------------------------------------------------------------


@functools.cache
def _module_owners() -> dict[str, importlib.metadata.Distribution]:
    """Importable module name -> the distribution that installed it (this venv)."""
    owners: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        for file in _installed_files(dist):
            parts = tuple(part for part in file.split("/") if part)
            if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
                continue
            stem, _, suffix = parts[-1].partition(".")
            if suffix not in ("py",) and not suffix.endswith(("so", "pyd")):
                continue
            names = list(parts[:-1]) if stem == "__init__" else [*parts[:-1], stem]
            owners.setdefault(".".join(names), dist)
    return owners


def _installed_files(dist: importlib.metadata.Distribution) -> list[str]:
    """The paths a distribution installed, relative to site-packages, as '/'-joined strings.

    Read from its RECORD (a CSV of path, hash, size) where it has one: `dist.files` makes a
    PackagePath of every line, about 30 times slower over a whole venv.
    """
    record = dist.read_text("RECORD")
    if record is None:
        return [file.as_posix() for file in dist.files or ()]
    return [row[0] for row in csv.reader(record.splitlines()) if row]


def distribution_of(module: str) -> str | None:
    """The distribution providing `module` (longest installed package prefix), or None."""
    owners = _module_owners()
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        owner = owners.get(".".join(parts[:depth]))
        if owner:
            return _name_of(owner)
    return None


@functools.cache
def _name_of(dist: importlib.metadata.Distribution) -> str:
    """A distribution's canonical name: its metadata is parsed only for the few a bundle imports."""
    return canonicalize_name(dist.metadata["Name"])


def _pins(requirements_file: Path) -> dict[str, Requirement]:
    """Canonical distribution name -> its pinned requirement in requirements.txt."""
    pins: dict[str, Requirement] = {}
    for raw in requirements_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = req
    return pins


@functools.cache
def _closure(name: str, extras: frozenset[str]) -> frozenset[str]:
    """The distribution and everything it installs (markers evaluated here, extras honoured)."""
    out = {name}
    try:
        requires = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset(out)
    for line in requires:
        dep = Requirement(line)
        if dep.marker and not any(dep.marker.evaluate({"extra": extra}) for extra in (extras | {""})):
            continue
        out |= _closure(canonicalize_name(dep.name), frozenset(dep.extras))
    return frozenset(out)


def requirements_for(modules: Iterable[str], requirements_file: Path = REQUIREMENTS) -> list[str]:
    """The pinned requirement lines that provide `modules` (plus functions-framework)."""
    pins = _pins(requirements_file)
    needed: set[str] = set()
    for module in sorted(modules):
        dist = distribution_of(module)
        if dist is None:
            raise BundleError(f"{module} is imported but no installed distribution provides it")
        needed.add(dist)
    chosen = {canonicalize_name(name) for name in ALWAYS} | (needed & set(pins))
    for dist in sorted(needed - set(pins)):
        closures = {pin: _closure(pin, frozenset(req.extras)) for pin, req in pins.items()}
        if any(dist in closures[pin] for pin in chosen):
            continue
        owners = sorted((len(closure), pin) for pin, closure in closures.items() if dist in closure)
        if not owners:
            raise BundleError(f"{dist} is imported but requirements.txt pins nothing that installs it")
        chosen.add(owners[0][1])  # the lightest pinned requirement that brings it
    return sorted((str(pins[name]) for name in chosen), key=str.lower)


# ---- building -------------------------------------------------------------------------------


def groups(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """Every function group: each functions/<group>/main.py, which must cover the manifest."""
    found = sorted(p.parent.name for p in functions_dir.glob("*/main.py"))
    missing = set(manifest.load().groups) - set(found)
    if missing:
        raise BundleError(f"manifest groups without functions/<group>/main.py: {sorted(missing)}")
    return found


def analyse(group: str) -> tuple[list[str], list[str]]:
    """(pinned requirements, reachable shared modules) of one group, without building it."""
    main_py = FUNCTIONS_DIR / group / "main.py"
    if not main_py.is_file():
        raise BundleError(f"no such function group: {group}")
    modules, external = reachable(main_py)
    return requirements_for(external), modules


def requirements_text(group: str, requirements: Sequence[str]) -> str:
    """The requirements.txt of a group: its derived, pinned requirements under a header."""
    header = f"# Generated by `python -m infra.bundle` from requirements.txt: what the {group} group imports.\n"
    return header + "".join(f"{line}\n" for line in requirements)


def sync_source_requirements() -> list[str]:
    """Rewrite functions/<group>/requirements.txt from the derivation; return the groups changed.

    The source folders stay deployable as they are (`gcloud ... --source functions/<group>`
    after vendoring), and a test keeps the checked-in files equal to what bundles would get.
    """
    changed = []
    for group in groups():
        target = FUNCTIONS_DIR / group / "requirements.txt"
        text = requirements_text(group, analyse(group)[0])
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            changed.append(group)
    return changed


def build(group: str, out_root: Path = DEFAULT_OUT) -> Bundle:
    """Write out_root/<group>/ (replacing it): main.py, shared/, the manifest, requirements.txt."""
    requirements, modules = analyse(group)
    dest = out_root / group
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(FUNCTIONS_DIR / group / "main.py", dest / "main.py")
    shutil.copytree(SHARED_DIR, dest / "shared", ignore=_IGNORED_COPY)
    manifest.write_bundle_copy(dest / "shared" / "functions.json")
    (dest / "shared" / "release.json").write_text(json.dumps({"version": release_version()}))
    (dest / "requirements.txt").write_text(requirements_text(group, requirements))
    return Bundle(group=group, path=dest, requirements=tuple(requirements), modules=tuple(modules))


def release_version(repo: Path = REPO) -> str:
    """`<project version>+g<commit>` (`.dirty` when the tree has changes), stamped into each bundle."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]
    git = ["git", "-C", str(repo)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{project}+unknown"
    return f"{project}+g{commit.stdout.strip()}" + (".dirty" if dirty.strip() else "")


def build_all(out_root: Path = DEFAULT_OUT, only: Sequence[str] = ()) -> list[Bundle]:
    """Build every group's bundle (or only the named groups) under out_root."""
    return [build(group, out_root) for group in (only or groups())]


def site_dirs() -> list[str]:
    """This interpreter's site-packages folders (the venv's), without the user site."""
    return [path for path in site.getsitepackages() if Path(path).is_dir()]


_PRELUDE = """\
import site, sys
sys.path.insert(0, {bundle!r})
for _dir in {sites!r}:
    site.addsitedir(_dir)
"""


def isolated_python(bundle: Path, code: str) -> list[str]:
    """argv running `code` in a fresh interpreter that sees only `bundle` and site-packages.

    `-I` ignores PYTHON* variables and the user site and does not put the current directory
    or a script's folder on sys.path; `-S` skips site-packages until the prelude adds exactly
    the venv's (processing its .pth files), so the repository itself is never importable.
    """
    prelude = _PRELUDE.format(bundle=str(bundle), sites=site_dirs())
    return [sys.executable, "-I", "-S", "-c", prelude + code]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups to build (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/)")
    parser.add_argument(
        "--sync-sources",
        action="store_true",
        help="also rewrite functions/<group>/requirements.txt from the derivation",
    )
    args = parser.parse_args(argv)
    try:
        if args.sync_sources:
            print(f"functions/*/requirements.txt rewritten: {sync_source_requirements() or 'none changed'}")
        bundles = build_all(args.out, args.groups)
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    for bundle in bundles:
        print(f"{bundle.path}: {', '.join(bundle.requirements)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
