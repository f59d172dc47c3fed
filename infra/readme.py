"""Keep the README's deploy section equal to the dry run of the whole manifest.

    python -m infra.readme          # rewrite the block between the markers in README.md

A unit test fails when the block is stale, so the README never shows a plan the tooling
would not produce.
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra import bundle, deploy
from shared import manifest

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- deploy-dry-run:start -->", "<!-- deploy-dry-run:end -->"
EXAMPLE_PROJECT, EXAMPLE_REGION = "bestie-prod", "asia-southeast2"


def dry_run_text() -> str:
    """The dry run for the example project and region, with a clean (production-like) env."""
    config = deploy.load_config(EXAMPLE_PROJECT, EXAMPLE_REGION)
    plan = deploy.plan(manifest.load().functions, config, {}, bundle.DEFAULT_OUT)
    return deploy.render(plan)


def block(text: str) -> str:
    return f"{START}\n```sh\n{text}```\n{END}"


def current_block(readme: str) -> str:
    start, end = readme.index(START), readme.index(END) + len(END)
    return readme[start:end]


def main() -> int:
    readme = README.read_text()
    README.write_text(readme.replace(current_block(readme), block(dry_run_text())))
    print("README.md deploy section regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
