"""The dry-run text of a plan: every command and job, in the order the deploy runs them."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from infra import scheduler
from infra.deploy import prerequisites, urlmap
from infra.deploy.planner import Plan, source_dir


def format_command(argv: Sequence[str]) -> str:
    """A shell command, one flag per line."""
    words = [shlex.quote(word) for word in argv]
    first = next((i for i, word in enumerate(argv) if word.startswith("--")), len(argv))
    lines = [" ".join(words[:first]), *words[first:]]
    return " \\\n    ".join(line for line in lines if line)


def render(p: Plan) -> str:
    """The dry-run text: preflight reads, bundles, budget, migration job, functions, jobs, load balancer."""
    out = [f"# Deploy plan for project {p.config.project}, region {p.config.region}"]
    out.append("\n# 0. Preflight: what must exist first (docs/deployment.md), read before anything changes")
    out.append(format_command(prerequisites.ACCOUNT_COMMAND) + "   # the deployer")
    for item in prerequisites.prerequisites(p):
        out.append(f"# {item.what} ({item.step})")
        out.append(format_command(item.argv))
    out.append("# every secret the plan mounts, non-empty")
    out += [
        format_command(prerequisites.secret_read_command(p.config.project, s)) for s in prerequisites.mounted_secrets(p)
    ]
    out.append("# the Cloud Scheduler API with Application Default Credentials: one list_jobs call")
    out.append("\n# 1. Bundles (python -m infra.bundle): source folder, pinned requirements")
    out += [f"#   {source_dir(p.build_dir, group)}: {', '.join(reqs)}" for group, reqs in p.bundles.items()]
    out.append("\n# 2. Postgres connection budget (docs/deployment.md)")
    out += [f"#   {line}" for line in p.budget.table().splitlines()]
    out.append("\n# 3. Migration job: migrations, grants, first admin on request; waited for before any function")
    out += [format_command(cmd) for cmd in p.migration]
    out.append(f"\n# 4. Functions ({len(p.functions)})")
    for fp in p.functions:
        billing = f"; instance-based billing: {fp.billing}" if fp.billing else ""
        out.append(f"\n# {fp.fn.method} {fp.fn.route}  (auth: {fp.fn.auth}{billing})")
        out.append(format_command(fp.command))
        out += [format_command(cmd) for cmd in fp.after]
    out.append(f"\n# 5. Cloud Scheduler jobs ({len(p.jobs)}), created or updated through google-cloud-scheduler")
    out += [scheduler.describe(job) for job in p.jobs]
    applied = "applied by this deploy" if p.load_balancer else "applied only with --load-balancer"
    out.append(f"\n# 6. Load balancer: serverless NEG + backend service per public function ({applied})")
    out += [format_command(cmd) for cmd in p.lb_commands]
    if p.monitoring:
        out.append(f"\n# 7. Alerts and dashboard ({len(p.monitoring)}): written by `python -m infra.monitoring`,")
        out.append("#    each looked up, then updated if found or created (docs/operations.md)")
        out += [step.describe() for step in p.monitoring]
    if p.url_map:
        source = source_dir(p.build_dir, "urlmap.json")
        out.append(f"\n# URL map, written to {source} and imported with:")
        out.append(format_command(urlmap.import_command(p.config.project, p.config.load_balancer, source)))
        out.append(urlmap.to_text(p.url_map))
    return "\n".join(out) + "\n"
