"""`python -m infra deploy`: parse the command line, plan, print or execute."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from infra import bundle
from infra.deploy import __doc__ as PACKAGE_DOC
from infra.deploy.config import DeployRefused, load_config
from infra.deploy.executor import execute, preflight
from infra.deploy.planner import plan
from infra.deploy.renderer import render
from shared import manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra deploy", description=(PACKAGE_DOC or "").splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--config", type=Path, help="TOML overriding infra/deploy/defaults.toml")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="deploy only these functions")
    parser.add_argument("--build-dir", type=Path, default=bundle.DEFAULT_OUT)
    parser.add_argument("--load-balancer", action="store_true", help="also create the NEGs and import the URL map")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print everything, change nothing")
    mode.add_argument(
        "--preflight", action="store_true", help="only read what must exist first and name what is missing"
    )
    args = parser.parse_args(argv)

    functions = manifest.load().functions
    if args.only:
        unknown = set(args.only) - {fn.name for fn in functions}
        if unknown:
            parser.error(f"not in the manifest: {sorted(unknown)}")
        functions = tuple(fn for fn in functions if fn.name in args.only)
    try:
        config = load_config(args.project, args.region, args.config)
        the_plan = plan(functions, config, os.environ, args.build_dir.resolve(), load_balancer=args.load_balancer)
    except (DeployRefused, bundle.BundleError, ValueError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        sys.stdout.write(render(the_plan))
        return 0
    if args.preflight:
        problems = preflight(the_plan)
        for problem in problems:
            print(f"missing: {problem}", file=sys.stderr)
        print("preflight: " + (f"{len(problems)} problem(s), nothing was changed" if problems else "ready to deploy"))
        return 2 if problems else 0
    try:
        execute(the_plan)
    except DeployRefused as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    return 0
