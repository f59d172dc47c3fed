"""The plan: one FunctionPlan per deployable function, its Scheduler jobs and load balancer, or a refusal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import scheduler_v1

from infra import bundle, monitoring, scheduler
from infra.deploy import budget, migration_job, needs, urlmap
from infra.deploy.config import REPO, Config, DeployRefused, unsafe_settings
from shared import manifest
from shared.config import default as setting_default

LATEST = "latest"
LB_HOPS = "2"  # TRUSTED_PROXY_HOPS behind the external Application Load Balancer
LB_INGRESS = "internal-and-gclb"  # function URLs answer only the load balancer and internal callers


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
    billing: str = ""  # why it is billed per instance ("" = per request), written in the plan

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
    mounts = {name: secret_mount(config.secrets.get(name, name), config) for name in names}
    return mounts | {path: secret_mount(secret, config) for path, secret in config.secret_files.items()}


def secret_mount(secret: str, config: Config) -> str:
    """`secret-id:version`, the version pinned in [secret_versions] (`latest` when it is not,
    which only a local plan accepts: see `unpinned`)."""
    return f"{secret}:{config.secret_versions.get(secret, LATEST)}"


def unpinned(mounts: Iterable[str]) -> list[str]:
    """The secret ids among `secret-id:version` mounts that are not pinned to a version."""
    return sorted({m.rsplit(":", 1)[0] for m in mounts if m.endswith(f":{LATEST}")})


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
    # Concurrency > 1 needs a whole CPU; at concurrency 1 the CPU follows memory (256Mi: 0.167 vCPU,
    # https://cloud.google.com/functions/docs/configuring/memory), too little for the sweeps, whose
    # figures (docs/sweeps.md) were measured on full cores.
    cpu = fn.cpu or ("1" if fn.concurrency > 1 or fn.is_sweep else None)
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
    migration: list[list[str]] = field(default_factory=list)  # the job's deploy, then its execution
    migration_secrets: dict[str, str] = field(default_factory=dict)  # the job's env var -> secret:version
    local: bool = False  # built for `make dev` (test routes, dev switches): never executed
    load_balancer: bool = False  # the NEGs, backends and URL map are applied (--load-balancer)
    monitoring: list[monitoring.Ensure] = field(default_factory=list)  # metrics, alerts, dashboard

    def function(self, name: str) -> FunctionPlan:
        return next(fp for fp in self.functions if fp.fn.name == name)

    @property
    def groups(self) -> list[str]:
        return list(self.bundles)


def source_dir(build_dir: Path, group: str) -> str:
    """The `--source` of a group's bundle (repo-relative when inside the repo)."""
    path = build_dir / group
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def proxy_refusals(config: Config, *, load_balancer: bool) -> list[str]:
    """What is wrong with the client-IP settings (TRUSTED_PROXY_HOPS, ingress) of this deploy.

    A direct call to a function URL carries one X-Forwarded-For hop that Google appended; a call
    through the external Application Load Balancer carries two
    (https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header). Both settings
    change in the same deploy as the load balancer (docs/deployment.md, "Client IP").
    """
    hops = str(config.env.get("TRUSTED_PROXY_HOPS") or setting_default("TRUSTED_PROXY_HOPS")).strip()
    ingress = config.ingress_settings
    problems = []
    if hops.isdigit() and int(hops) > 1 and ingress != LB_INGRESS:
        # With ingress "all" a caller can skip the load balancer and send its own
        # X-Forwarded-For, whose second entry from the right it then chose itself.
        problems.append(
            f"TRUSTED_PROXY_HOPS={hops} needs ingress_settings = '{LB_INGRESS}' (now"
            f" {ingress!r}): a direct caller of a function URL would pick its own IP"
        )
    if load_balancer and (hops != LB_HOPS or ingress != LB_INGRESS):
        # Behind the balancer the rightmost hop is the balancer itself: at one hop every client
        # would share its IP, and every per-IP limit and lockout would count all of them together.
        problems.append(
            f"--load-balancer needs TRUSTED_PROXY_HOPS = {LB_HOPS} in [env] and ingress_settings ="
            f" '{LB_INGRESS}' in the same deploy (now {hops!r} and {ingress!r}): otherwise every"
            " client has the load balancer's IP, or a direct caller picks its own"
        )
    return problems


def _refusals(
    targets: Sequence[manifest.Function], config: Config, environ: Mapping[str, str], *, load_balancer: bool
) -> list[str]:
    problems = [f"this shell has {item}" for item in unsafe_settings(environ)]
    problems += [f"the deploy config sets {item}" for item in unsafe_settings(config.env)]
    if (config.env.get("OTP_PROVIDER") or setting_default("OTP_PROVIDER")).strip().lower() == "log":
        # The log provider writes OTP codes to the logs and sends no SMS: development only.
        problems.append("the deploy config leaves OTP_PROVIDER at 'log' (codes in logs, no SMS)")
    for fn in targets:
        if fn.is_sweep and fn.auth != "scheduler":
            problems.append(f"{fn.name} is a sweep but its auth is {fn.auth!r}, not 'scheduler'")
    problems += proxy_refusals(config, load_balancer=load_balancer)
    unread = sorted(set(config.env) - needs.read_by_any(deployable(manifest.load().functions)))
    unread = [name for name in unread if name not in {fn.schedule_env for fn in manifest.load().functions}]
    if unread:
        problems.append(f"the deploy config sets {unread}, which no function reads")
    return problems


def billing_reason(fn: manifest.Function) -> str:
    """Why `fn` needs instance-based billing, or "" when request-based suits it.

    Two reasons (docs/cost.md, docs/push.md): the cost model chose it (the manifest's `billing`),
    or it queues pushes that are sent after its response (`pushes`). Request-based billing
    throttles the CPU between requests
    (https://cloud.google.com/run/docs/configuring/billing-settings), so a queued push could wait
    for the instance's next request.
    """
    if fn.billing == "instance":
        return "cheaper for its steady traffic (docs/cost.md)"
    if fn.pushes:
        return "sends pushes after its response (docs/push.md)"
    return ""


def instance_billing_command(fn: manifest.Function, config: Config) -> list[str]:
    """Switch the function's Cloud Run service to instance-based billing (no CPU throttling).

    A gen2 function is a Cloud Run service of the same name; `gcloud functions deploy` has no
    billing flag, so the service is updated after each deploy
    (https://cloud.google.com/run/docs/configuring/billing-settings).
    """
    return [
        *("gcloud", "run", "services", "update", fn.name),
        f"--region={config.region}",
        f"--project={config.project}",
        "--no-cpu-throttling",
    ]


def plan(
    functions: Sequence[manifest.Function],
    config: Config,
    environ: Mapping[str, str],
    build_dir: Path = bundle.DEFAULT_OUT,
    *,
    local: bool = False,
    load_balancer: bool = False,
) -> Plan:
    """Plan the deployment of `functions`; raise DeployRefused if it would be unsafe.

    `local=True` builds the same shape for `make dev` (test-only functions included, dev
    switches allowed); such a plan is served locally and never executed.
    """
    targets = list(functions) if local else deployable(functions)
    if not targets:
        raise DeployRefused("nothing to deploy")
    if not local:
        problems = _refusals(targets, config, environ, load_balancer=load_balancer)
        if problems:
            raise DeployRefused("refusing to deploy: " + "; ".join(problems))
    try:
        connections = budget.allocate(
            targets, config.db_max_connections, config.db_reserved_connections, config.db_surge_margin
        )
    except budget.OverBudget as exc:
        raise DeployRefused(f"refusing to deploy: {exc}") from None

    bundles = {group: bundle.analyse(group)[0] for group in dict.fromkeys(fn.group for fn in targets)}
    plans = []
    for fn in targets:
        env = function_env(fn, config)
        if unsafe_settings(env) and not local:
            raise DeployRefused(f"refusing to deploy {fn.name}: {', '.join(unsafe_settings(env))}")
        after = [] if fn.auth != "scheduler" else [invoker_command(fn, config)]
        reason = billing_reason(fn)
        if reason:
            after.append(instance_billing_command(fn, config))
        instances = connections.max_instances(fn.name)
        command = deploy_command(fn, config, source_dir(build_dir, fn.group), instances)
        url = scheduler.function_url(config.project, config.region, fn.name)
        plans.append(FunctionPlan(fn, env, function_secrets(fn, config), command, after, instances, url, reason))

    job_settings = scheduler.JobSettings(
        project=config.project,
        region=config.region,
        service_account=config.scheduler_service_account,
        time_zone=config.time_zone,
    )
    public = [p.fn for p in plans if p.public]
    job_secrets = {
        name: secret_mount(config.secrets.get(name, name), config) for name in migration_job.secret_names(config)
    }
    migration = migration_job.commands(config, source_dir(build_dir, config.migrate_job), _join(job_secrets))
    floating = unpinned([*(m for fp in plans for m in fp.secrets.values()), *job_secrets.values()])
    if floating and not local:
        raise DeployRefused(
            f"refusing to deploy: secrets {floating} have no pinned version: add each under [secret_versions]"
            " (every instance must mount the same version; docs/deployment.md, 'Rotating the JWT key')"
        )
    return Plan(
        config=config,
        build_dir=build_dir,
        bundles=bundles,
        functions=plans,
        jobs=scheduler.job_specs(targets, job_settings, config.env),
        url_map=urlmap.url_map(public, config.project, config.load_balancer) if public else {},
        lb_commands=urlmap.backend_commands(public, config.project, config.region, config.load_balancer),
        budget=connections,
        migration=[] if local else migration,
        migration_secrets={} if local else job_secrets,
        local=local,
        load_balancer=load_balancer,
        monitoring=[] if local else monitoring.ensure_steps(config.project, Path(source_dir(build_dir, "monitoring"))),
    )
