"""Keep docs/deploy-plan.md equal to the dry run of the whole manifest.

    python -m infra.readme          # rewrite docs/deploy-plan.md

A unit test fails when the file is stale, so the docs never show a plan the tooling would
not produce. The README keeps the commands and a short summary and links here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra import bundle, deploy
from shared import manifest

REPO = Path(__file__).resolve().parent.parent
PLAN_DOC = REPO / "docs" / "deploy-plan.md"
EXAMPLE_PROJECT, EXAMPLE_REGION = "bestie-prod", "asia-southeast2"

HEADER = """\
# Deploy plan (generated)

The dry run of the whole manifest for an example project, written by `python -m infra.readme`
and kept equal to the tooling by `tests/tooling/test_deploy_plan.py`. Do not edit by hand.
How to go from nothing to a working deploy: [deployment.md](deployment.md).

    python -m infra deploy --project {project} --region {region} --dry-run

"""


def dry_run_text() -> str:
    """The dry run for the example project and region, with a clean (production-like) env."""
    config = deploy.load_config(EXAMPLE_PROJECT, EXAMPLE_REGION)
    plan = deploy.plan(manifest.load().functions, config, {}, bundle.DEFAULT_OUT)
    return deploy.render(plan)


def plan_doc() -> str:
    return HEADER.format(project=EXAMPLE_PROJECT, region=EXAMPLE_REGION) + f"```sh\n{dry_run_text()}```\n"


def main() -> int:
    PLAN_DOC.write_text(plan_doc())
    print(f"{PLAN_DOC.relative_to(REPO)} regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
