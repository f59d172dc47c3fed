"""Deploy every function of the manifest to Cloud Functions (gen2), with its Scheduler jobs.

`python -m infra deploy --project P --region R [--dry-run] [--config FILE] [--only NAME ...]
[--load-balancer] [--skip-preflight]` plans, from the manifest and `infra/deploy/defaults.toml`
(+ `--config`):

- one `gcloud functions deploy` per deployable function (test-only ones never are), its
  source the group's bundle (`build/<group>/`, see infra/bundle.py), with the env vars and
  Secret Manager secrets its code reads (infra/deploy/needs.py), VPC egress to Memorystore
  and Cloud SQL, its service account, the memory/timeout/concurrency of its manifest entry
  and the max instances and pool size of the connection budget (infra/deploy/budget.py);
- public app routes allow unauthenticated invocation (they check our JWT themselves);
  sweeps (`auth = "scheduler"`) do not, and only the scheduler service account may invoke them;
- one Cloud Scheduler job per sweep (infra/scheduler.py), created or updated idempotently;
- the load balancer's serverless NEGs, backend services and URL map (infra/deploy/urlmap.py),
  printed always and applied with `--load-balancer`.

`--dry-run` prints all of it and changes nothing. The tool refuses to deploy when
ENABLE_TEST_ENDPOINTS is truthy or SWEEP_AUTH=none, in this shell or in any env it would set;
when the plan's Postgres connections exceed DB_MAX_CONNECTIONS; when TRUSTED_PROXY_HOPS > 1
while the functions' own URLs stay reachable (ingress "all"); and, before deploying anything,
when a secret the plan mounts is missing or empty or the Scheduler API cannot be called with
Application Default Credentials (the preflight). Every create step treats "already exists" as
done, so a re-run finishes what a failed run started.

The same Plan object is what `make dev`'s gateway and local scheduler serve and what the
platform stand-in of the tests (tests/platform/) runs: one description of the deployed shape.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import scheduler_v1

from infra import bundle, scheduler
from infra.deploy import budget, needs, urlmap
from shared import manifest
from shared.config import default as setting_default

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = Path(__file__).with_name("defaults.toml")
TRUTHY = ("1", "true", "yes", "on")

Runner = Callable[[Sequence[str]], None]


class DeployRefused(RuntimeError):
    """Raised when the planned deployment is unsafe or inconsistent; nothing was changed."""


@dataclass(frozen=True)
class Config:
    """Deployment-wide settings (defaults.toml merged with --config, placeholders filled)."""

    project: str
    region: str
    service_account: str
    scheduler_service_account: str
    vpc_connector: str
    egress_settings: str = "private-ranges-only"
    ingress_settings: str = "all"
    time_zone: str = "Etc/UTC"
    load_balancer: str = "bestie"
    runtime: str = "python311"
    build_service_account: str | None = None  # Cloud Build's identity (new projects need one)
    db_max_connections: int = 1000  # DB_MAX_CONNECTIONS: the Cloud SQL instance's max_connections
    db_reserved_connections: int = 20  # kept free for migrations, bootstrap-admin and psql
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    secret_files: dict[str, str] = field(default_factory=dict)  # mount path -> secret id, every function


def _fill(value: Any, project: str, region: str) -> Any:
    if isinstance(value, str):
        return value.replace("{project}", project).replace("{region}", region)
    if isinstance(value, dict):
        return {k: _fill(v, project, region) for k, v in value.items()}
    return value


def load_config(project: str, region: str, extra: Path | None = None) -> Config:
    """Read defaults.toml, merge `extra` over it (tables key by key), fill {project}/{region}."""
    with DEFAULTS.open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    if extra is not None:
        with extra.open("rb") as fh:
            override = tomllib.load(fh)
        for key, value in override.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data = _fill(data, project, region)
    known = set(Config.__dataclass_fields__) - {"project", "region"}
    unknown = set(data) - known
    if unknown:
        raise DeployRefused(f"unknown deploy settings: {sorted(unknown)}")
    data["env"] = {k: str(v) for k, v in data.get("env", {}).items()}
    data["secrets"] = {k: str(v) for k, v in data.get("secrets", {}).items()}
    data["secret_files"] = {k: str(v) for k, v in data.get("secret_files", {}).items()}
    return Config(project=project, region=region, **data)


# ---- safety ---------------------------------------------------------------------------------


def unsafe_settings(env: Mapping[str, str]) -> list[str]:
    """The dev-only switches set in `env` (test endpoints, unauthenticated sweeps)."""
    found = []
    if (env.get("ENABLE_TEST_ENDPOINTS") or "").strip().lower() in TRUTHY:
        found.append(f"ENABLE_TEST_ENDPOINTS={env['ENABLE_TEST_ENDPOINTS']}")
    if (env.get("SWEEP_AUTH") or "").strip().lower() == "none":
        found.append(f"SWEEP_AUTH={env['SWEEP_AUTH']}")
    return found


# ---- per function ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionPlan:
    """Everything the deploy does for one function."""

    fn: manifest.Function
    env: dict[str, str]
    secrets: dict[str, str]  # env var -> "secret-id:latest"
    command: list[str]
    after: list[list[str]]  # IAM bindings run once the function exists
    max_instances: int = 1
    url: str = ""  # the function's own URL (also the audience of tokens for it)

    @property
    def public(self) -> bool:
        return self.fn.auth != "scheduler"

    @property
    def invokers(self) -> tuple[str, ...]:
        """Who may invoke it: allUsers, or the members of its invoker bindings."""
        if self.public:
            return ("allUsers",)
        return tuple(arg.split("=", 1)[1] for cmd in self.after for arg in cmd if arg.startswith("--member="))


def deployable(functions: Sequence[manifest.Function]) -> list[manifest.Function]:
    """The functions that go to the cloud: all but the test-only ones."""
    return [fn for fn in functions if not fn.test_only]


def function_env(fn: manifest.Function, config: Config) -> dict[str, str]:
    """Non-secret env of one function: what its code reads of the deployment's [env], plus its own."""
    wanted = needs.env_names(fn)
    env = {key: value for key, value in config.env.items() if key in wanted}
    if "GOOGLE_CLOUD_PROJECT" in wanted:
        env["GOOGLE_CLOUD_PROJECT"] = config.project  # the trace field of the logs names the project
    if "DB_POOL_SIZE" in wanted:
        env["DB_POOL_SIZE"] = str(fn.pool_size)  # pool size from concurrency (manifest.Function.pool_size)
    # functions-framework serves THREADS requests at once (default 4 x CPUs: _http/gunicorn.py in
    # GoogleCloudPlatform/functions-framework-python); match the instance's concurrency so a
    # long-polling function really holds `concurrency` requests.
    env["THREADS"] = str(fn.concurrency)
    if fn.auth == "scheduler":
        env["SCHEDULER_AUDIENCE"] = scheduler.function_url(config.project, config.region, fn.name)
        env["SCHEDULER_SERVICE_ACCOUNT"] = config.scheduler_service_account
    return dict(sorted(env.items()))


def function_secrets(fn: manifest.Function, config: Config) -> dict[str, str]:
    """Secret Manager mounts of one function: the secrets its code reads, plus files.

    With CLOUD_SQL_INSTANCE configured, the Cloud SQL Python Connector replaces DATABASE_URL,
    so that secret is not mounted, and DB_PASSWORD is mounted unless IAM auth is on.
    """
    names = needs.secret_names(fn, config.env, config.secrets)
    mounts = {name: f"{config.secrets.get(name, name)}:latest" for name in names}
    return mounts | {path: f"{secret}:latest" for path, secret in config.secret_files.items()}


def _join(values: Mapping[str, str]) -> str:
    """KEY=VALUE pairs for gcloud, switching the delimiter when a value holds a comma."""
    pairs = [f"{k}={v}" for k, v in values.items()]
    text = "".join(pairs)
    if "," not in text:
        return ",".join(pairs)
    delimiter = next(d for d in "@|;#~" if d not in text)
    return f"^{delimiter}^" + delimiter.join(pairs)  # gcloud topic escaping


def deploy_command(fn: manifest.Function, config: Config, source: str, max_instances: int) -> list[str]:
    """The `gcloud functions deploy` argv of one function."""
    env = function_env(fn, config)
    secrets = function_secrets(fn, config)
    cpu = fn.cpu or ("1" if fn.concurrency > 1 else None)  # concurrency > 1 needs a whole CPU
    argv = [
        *("gcloud", "functions", "deploy", fn.name),
        "--gen2",
        f"--runtime={config.runtime}",
        f"--region={config.region}",
        f"--project={config.project}",
        f"--entry-point={fn.entry_point}",
        f"--source={source}",
        "--trigger-http",
        f"--service-account={config.service_account}",
        f"--memory={fn.memory}",
        *([f"--cpu={cpu}"] if cpu else []),
        f"--timeout={fn.timeout}s",
        f"--concurrency={fn.concurrency}",
        f"--min-instances={fn.min_instances}",
        f"--max-instances={max_instances}",
        f"--vpc-connector={config.vpc_connector}",
        f"--egress-settings={config.egress_settings}",
        f"--ingress-settings={config.ingress_settings}",
        f"--set-env-vars={_join(env)}",
        f"--set-secrets={_join(secrets)}" if secrets else "--clear-secrets",
        "--allow-unauthenticated" if fn.auth != "scheduler" else "--no-allow-unauthenticated",
        *([f"--build-service-account={config.build_service_account}"] if config.build_service_account else []),
        "--quiet",
    ]
    return argv


def invoker_command(fn: manifest.Function, config: Config) -> list[str]:
    """Grant the scheduler service account (only it) the right to invoke a sweep."""
    return [
        *("gcloud", "functions", "add-invoker-policy-binding", fn.name),
        f"--region={config.region}",
        f"--project={config.project}",
        f"--member=serviceAccount:{config.scheduler_service_account}",
    ]


# ---- the whole plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    config: Config
    build_dir: Path
    bundles: dict[str, list[str]]  # group -> pinned requirements
    functions: list[FunctionPlan]
    jobs: list[scheduler_v1.Job]
    url_map: dict[str, Any]
    lb_commands: list[list[str]]
    budget: budget.Budget
    local: bool = False  # built for `make dev` (test routes, dev switches): never executed

    def function(self, name: str) -> FunctionPlan:
        return next(fp for fp in self.functions if fp.fn.name == name)

    @property
    def groups(self) -> list[str]:
        return list(self.bundles)


def _source(build_dir: Path, group: str) -> str:
    path = build_dir / group
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _refusals(targets: Sequence[manifest.Function], config: Config, environ: Mapping[str, str]) -> list[str]:
    problems = [f"this shell has {item}" for item in unsafe_settings(environ)]
    problems += [f"the deploy config sets {item}" for item in unsafe_settings(config.env)]
    if (config.env.get("OTP_PROVIDER") or setting_default("OTP_PROVIDER")).strip().lower() == "log":
        # The log provider writes OTP codes to the logs and sends no SMS: development only.
        problems.append("the deploy config leaves OTP_PROVIDER at 'log' (codes in logs, no SMS)")
    for fn in targets:
        if fn.is_sweep and fn.auth != "scheduler":
            problems.append(f"{fn.name} is a sweep but its auth is {fn.auth!r}, not 'scheduler'")
    hops = str(config.env.get("TRUSTED_PROXY_HOPS") or setting_default("TRUSTED_PROXY_HOPS")).strip()
    if hops.isdigit() and int(hops) > 1 and config.ingress_settings != "internal-and-gclb":
        # With ingress "all" a caller can skip the load balancer and send its own
        # X-Forwarded-For, whose second entry from the right it then chose itself.
        problems.append(
            f"TRUSTED_PROXY_HOPS={hops} needs ingress_settings = 'internal-and-gclb' (now"
            f" {config.ingress_settings!r}): a direct caller of a function URL would pick its own IP"
        )
    unread = sorted(set(config.env) - needs.read_by_any(deployable(manifest.load().functions)))
    unread = [name for name in unread if name not in {fn.schedule_env for fn in manifest.load().functions}]
    if unread:
        problems.append(f"the deploy config sets {unread}, which no function reads")
    return problems


def plan(
    functions: Sequence[manifest.Function],
    config: Config,
    environ: Mapping[str, str],
    build_dir: Path = bundle.DEFAULT_OUT,
    *,
    local: bool = False,
) -> Plan:
    """Plan the deployment of `functions`; raise DeployRefused if it would be unsafe.

    `local=True` builds the same shape for `make dev` (test-only functions included, dev
    switches allowed); such a plan is served locally and never executed.
    """
    targets = list(functions) if local else deployable(functions)
    if not targets:
        raise DeployRefused("nothing to deploy")
    if not local:
        problems = _refusals(targets, config, environ)
        if problems:
            raise DeployRefused("refusing to deploy: " + "; ".join(problems))
    try:
        connections = budget.allocate(targets, config.db_max_connections, config.db_reserved_connections)
    except budget.OverBudget as exc:
        raise DeployRefused(f"refusing to deploy: {exc}") from None

    bundles = {group: bundle.analyse(group)[0] for group in dict.fromkeys(fn.group for fn in targets)}
    plans = []
    for fn in targets:
        env = function_env(fn, config)
        if unsafe_settings(env) and not local:
            raise DeployRefused(f"refusing to deploy {fn.name}: {', '.join(unsafe_settings(env))}")
        after = [] if fn.auth != "scheduler" else [invoker_command(fn, config)]
        instances = connections.max_instances(fn.name)
        command = deploy_command(fn, config, _source(build_dir, fn.group), instances)
        url = scheduler.function_url(config.project, config.region, fn.name)
        plans.append(FunctionPlan(fn, env, function_secrets(fn, config), command, after, instances, url))

    job_settings = scheduler.JobSettings(
        project=config.project,
        region=config.region,
        service_account=config.scheduler_service_account,
        time_zone=config.time_zone,
    )
    public = [p.fn for p in plans if p.public]
    return Plan(
        config=config,
        build_dir=build_dir,
        bundles=bundles,
        functions=plans,
        jobs=scheduler.job_specs(targets, job_settings, config.env),
        url_map=urlmap.url_map(public, config.project, config.load_balancer) if public else {},
        lb_commands=urlmap.backend_commands(public, config.project, config.region, config.load_balancer),
        budget=connections,
        local=local,
    )


def format_command(argv: Sequence[str]) -> str:
    """A shell command, one flag per line."""
    words = [shlex.quote(word) for word in argv]
    first = next((i for i, word in enumerate(argv) if word.startswith("--")), len(argv))
    lines = [" ".join(words[:first]), *words[first:]]
    return " \\\n    ".join(line for line in lines if line)


def render(p: Plan) -> str:
    """The dry-run text: bundles, deploy commands, IAM bindings, Scheduler jobs, load balancer."""
    out = [f"# Deploy plan for project {p.config.project}, region {p.config.region}"]
    out.append("\n# 1. Bundles (python -m infra.bundle): source folder, pinned requirements")
    out += [f"#   {_source(p.build_dir, group)}: {', '.join(reqs)}" for group, reqs in p.bundles.items()]
    out.append("\n# 2. Postgres connection budget (docs/deployment.md)")
    out += [f"#   {line}" for line in p.budget.table().splitlines()]
    out.append(f"\n# 3. Functions ({len(p.functions)})")
    for fp in p.functions:
        out.append(f"\n# {fp.fn.method} {fp.fn.route}  (auth: {fp.fn.auth})")
        out.append(format_command(fp.command))
        out += [format_command(cmd) for cmd in fp.after]
    out.append(f"\n# 4. Cloud Scheduler jobs ({len(p.jobs)}), created or updated through google-cloud-scheduler")
    out += [scheduler.describe(job) for job in p.jobs]
    out.append("\n# 5. Load balancer: serverless NEG + backend service per public function (--load-balancer)")
    out += [format_command(cmd) for cmd in p.lb_commands]
    if p.url_map:
        source = _source(p.build_dir, "urlmap.json")
        out.append(f"\n# URL map, written to {source} and imported with:")
        out.append(format_command(urlmap.import_command(p.config.project, p.config.load_balancer, source)))
        out.append(urlmap.to_text(p.url_map))
    return "\n".join(out) + "\n"


def _run(argv: Sequence[str]) -> None:
    print("+ " + shlex.join(argv), flush=True)
    subprocess.run(list(argv), check=True, cwd=REPO)


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

SecretReader = Callable[[str, str], "bytes | None"]  # (project, secret id) -> latest value or None


def _gcloud_secret(project: str, secret: str) -> bytes | None:
    """The latest version of a secret through gcloud, or None when it is missing or unreadable."""
    done = subprocess.run(
        ["gcloud", "secrets", "versions", "access", "latest", f"--secret={secret}", f"--project={project}"],
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _check_scheduler(p: Plan) -> None:
    """Call the Scheduler API once, as the sync will (Application Default Credentials)."""
    client = scheduler_v1.CloudSchedulerClient()
    parent = f"projects/{p.config.project}/locations/{p.config.region}"
    next(iter(client.list_jobs(request={"parent": parent, "page_size": 1})), None)


def mounted_secret_ids(p: Plan) -> list[str]:
    """Every Secret Manager secret id some planned function mounts."""
    ids = {mount.rsplit(":", 1)[0] for fp in p.functions for mount in fp.secrets.values()}
    return sorted(ids)


def preflight(
    p: Plan,
    *,
    read_secret: SecretReader = _gcloud_secret,
    check_scheduler: Callable[[Plan], None] = _check_scheduler,
) -> list[str]:
    """What would make the deploy fail halfway, found before anything changes (empty: go)."""
    problems = []
    for secret in mounted_secret_ids(p):
        value = read_secret(p.config.project, secret)
        if value is None:
            problems.append(f"secret {secret} does not exist (or has no enabled version) in {p.config.project}")
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
    load_balancer: bool = False,
    run: Runner = _run,
    run_create: Runner = _run_create,
    scheduler_client: scheduler.SchedulerClient | None = None,
    read_secret: SecretReader = _gcloud_secret,
    check_scheduler: Callable[[Plan], None] = _check_scheduler,
) -> None:
    """Carry out a plan: preflight, bundles, functions, bindings, Scheduler jobs, the load balancer."""
    if p.local:
        raise DeployRefused("a local (make dev) plan is never deployed")
    problems = preflight(p, read_secret=read_secret, check_scheduler=check_scheduler)
    if problems:
        raise DeployRefused("preflight failed, nothing was deployed: " + "; ".join(problems))
    bundle.build_all(p.build_dir, p.groups)
    for fp in p.functions:
        run(fp.command)
        for cmd in fp.after:
            run(cmd)
    if p.jobs:
        for name, action in scheduler.sync(scheduler_client or scheduler.client(), p.jobs):
            print(f"scheduler job {name}: {action}")
    if load_balancer and p.url_map:
        for cmd in p.lb_commands:
            (run_create if cmd[3] in ("create", "add-backend") else run)(cmd)
        path = p.build_dir / "urlmap.json"
        path.write_text(json.dumps(p.url_map, indent=2))
        run(urlmap.import_command(p.config.project, p.config.load_balancer, str(path)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--config", type=Path, help="TOML overriding infra/deploy/defaults.toml")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="deploy only these functions")
    parser.add_argument("--build-dir", type=Path, default=bundle.DEFAULT_OUT)
    parser.add_argument("--load-balancer", action="store_true", help="also create the NEGs and import the URL map")
    parser.add_argument("--dry-run", action="store_true", help="print everything, change nothing")
    args = parser.parse_args(argv)

    functions = manifest.load().functions
    if args.only:
        unknown = set(args.only) - {fn.name for fn in functions}
        if unknown:
            parser.error(f"not in the manifest: {sorted(unknown)}")
        functions = tuple(fn for fn in functions if fn.name in args.only)
    try:
        config = load_config(args.project, args.region, args.config)
        the_plan = plan(functions, config, os.environ, args.build_dir.resolve())
    except (DeployRefused, bundle.BundleError, ValueError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        sys.stdout.write(render(the_plan))
        return 0
    try:
        execute(the_plan, load_balancer=args.load_balancer)
    except DeployRefused as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    return 0
