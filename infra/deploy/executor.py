"""Carry out a plan: the preflight, then bundles, the migration job, functions, bindings, jobs, load balancer."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence

from google.cloud import scheduler_v1

from infra import bundle, monitoring, scheduler
from infra.deploy import migration_job, prerequisites, urlmap
from infra.deploy.config import REPO, DeployRefused
from infra.deploy.planner import Plan

Runner = Callable[[Sequence[str]], None]


def _run(argv: Sequence[str]) -> None:
    print("+ " + shlex.join(argv), flush=True)
    subprocess.run(list(argv), check=True, cwd=REPO)


def _find(argv: Sequence[str]) -> str:
    """Run a read-only lookup; its output (the resource's name, or nothing)."""
    return subprocess.run(list(argv), check=True, cwd=REPO, capture_output=True, text=True).stdout


def ensure(step: monitoring.Ensure, run: Runner, find: Callable[[Sequence[str]], str] | None = None) -> str:
    """Update the resource `step` names when it exists, else create it; "updated" or "created".

    Alert policies and dashboards get server-made names, so a second `create` would make a
    duplicate: looking up first is what makes a re-run change nothing.
    """
    found = (find or _find)(step.find).strip().splitlines()
    if found:
        run([arg.replace("{found}", found[0]) for arg in step.update])
        return "updated"
    run(step.create)
    return "created"


ALREADY_DONE = ("already exists", "is already", "already in use by")


def _run_create(argv: Sequence[str]) -> None:
    """Run a create step; a resource that already exists is done (re-runs are idempotent)."""
    print("+ " + shlex.join(argv), flush=True)
    done = subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if any(marker in done.stderr for marker in ALREADY_DONE):
            print("  (already there)", flush=True)
            return
        sys.stderr.write(done.stderr)
        raise subprocess.CalledProcessError(done.returncode, list(argv))


# ---- preflight ------------------------------------------------------------------------------

SecretReader = Callable[[str, str], "bytes | None"]  # (project, "secret-id:version") -> value or None


def _gcloud_secret(project: str, mount: str) -> bytes | None:
    """The mounted version of a secret through gcloud, or None when it is missing or unreadable."""
    try:
        done = subprocess.run(list(prerequisites.secret_read_command(project, mount)), capture_output=True, check=False)
    except FileNotFoundError:  # no gcloud on PATH
        return None
    return done.stdout if done.returncode == 0 else None


def _read(argv: Sequence[str]) -> str | None:
    """Run a read-only gcloud command, printed like every step; its stdout, or None if it failed."""
    print("+ " + shlex.join(argv), flush=True)
    try:
        done = subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return done.stdout if done.returncode == 0 else None


def _check_scheduler(p: Plan) -> None:
    """Call the Scheduler API once, as the sync will (Application Default Credentials)."""
    client = scheduler_v1.CloudSchedulerClient()
    parent = f"projects/{p.config.project}/locations/{p.config.region}"
    next(iter(client.list_jobs(request={"parent": parent, "page_size": 1})), None)


def mounted_secret_ids(p: Plan) -> list[str]:
    """Every Secret Manager secret id the plan mounts (functions and the migration job)."""
    return sorted({mount.rsplit(":", 1)[0] for mount in prerequisites.mounted_secrets(p)})


def preflight(
    p: Plan,
    *,
    read_secret: SecretReader | None = None,
    check_scheduler: Callable[[Plan], None] | None = None,
    read: prerequisites.Reader | None = None,
) -> list[str]:
    """What would make the deploy fail halfway, found before anything changes (empty: go).

    The prerequisites (docs/deployment.md steps 2-5, and 12 with the load balancer) are read
    through `read`, each secret the plan mounts through `read_secret`, and the Scheduler API is
    called once with Application Default Credentials.
    """
    read_secret = read_secret or _gcloud_secret
    check_scheduler = check_scheduler or _check_scheduler
    problems = prerequisites.missing(p, read or _read)
    for mount in prerequisites.mounted_secrets(p):
        secret, _, version = mount.rpartition(":")
        value = read_secret(p.config.project, mount)
        if value is None:
            problems.append(f"secret {secret} (version {version}) does not exist or is disabled in {p.config.project}")
        elif not value.strip():
            problems.append(f"secret {secret} is empty: an empty secret is not a value")
    if p.jobs:
        try:
            check_scheduler(p)
        except Exception as exc:
            problems.append(
                "the Cloud Scheduler API is not usable with Application Default Credentials"
                f" ({type(exc).__name__}): run `gcloud auth application-default login`"
                " and enable cloudscheduler.googleapis.com"
            )
    return problems


def execute(
    p: Plan,
    *,
    run: Runner = _run,
    run_create: Runner = _run_create,
    scheduler_client: scheduler.SchedulerClient | None = None,
    read_secret: SecretReader | None = None,
    check_scheduler: Callable[[Plan], None] | None = None,
    read: prerequisites.Reader | None = None,
    find: Callable[[Sequence[str]], str] | None = None,
) -> None:
    """Carry out a plan: preflight, bundles, the migration job, functions, bindings, Scheduler
    jobs, alerts and the dashboard, the load balancer. A failed step stops the deploy; what ran
    before it stays done."""
    if p.local:
        raise DeployRefused("a local (make dev) plan is never deployed")
    problems = preflight(p, read_secret=read_secret, check_scheduler=check_scheduler, read=read)
    if problems:
        raise DeployRefused("preflight failed, nothing was deployed: " + "; ".join(problems))
    bundle.build_all(p.build_dir, p.groups)
    if p.migration:
        # The schema first: functions that need a new column roll out only after it exists.
        migration_job.build(p.build_dir, p.config.migrate_job, p.config.runtime)
        for cmd in p.migration:
            run(cmd)
    for fp in p.functions:
        run(fp.command)
        for cmd in fp.after:
            run(cmd)
    if p.jobs:
        for name, action in scheduler.sync(scheduler_client or scheduler.client(), p.jobs):
            print(f"scheduler job {name}: {action}")
    if p.monitoring:
        monitoring.write(p.build_dir / "monitoring")
        for step in p.monitoring:
            ensure(step, run, find)
    if p.load_balancer and p.url_map:
        for cmd in p.lb_commands:
            (run_create if cmd[3] in ("create", "add-backend") else run)(cmd)
        path = p.build_dir / "urlmap.json"
        path.write_text(json.dumps(p.url_map, indent=2))
        run(urlmap.import_command(p.config.project, p.config.load_balancer, str(path)))
