"""Deploy every function of the manifest to Cloud Functions (gen2), with its Scheduler jobs.

`python -m infra deploy --project P --region R [--dry-run | --preflight] [--config FILE]
[--only NAME ...] [--load-balancer]` plans, from the manifest and `infra/deploy/defaults.toml`
(+ `--config`):

- one `gcloud functions deploy` per deployable function (test-only ones never are), its
  source the group's bundle (`build/<group>/`, see infra/bundle.py), with the env vars and
  Secret Manager secrets its code reads (infra/deploy/needs.py), VPC egress to Memorystore
  and Cloud SQL, its service account, the memory/timeout/concurrency of its manifest entry
  and the max instances and pool size of the connection budget (infra/deploy/budget.py);
- public app routes allow unauthenticated invocation (they check our JWT themselves);
  sweeps (`auth = "scheduler"`) do not, and only the scheduler service account may invoke them;
- before any function, the migration job (infra/deploy/migration_job.py): a Cloud Run job built
  from the same code that migrates Cloud SQL from inside the VPC, and the deploy waits for it;
- one Cloud Scheduler job per sweep (infra/scheduler.py), created or updated idempotently;
- the load balancer's serverless NEGs, backend services and URL map (infra/deploy/urlmap.py),
  printed always and applied with `--load-balancer`.

`--dry-run` prints all of it, the preflight's read commands first, and changes nothing.
`--preflight` runs only the preflight and names what is missing. The tool refuses to deploy when
ENABLE_TEST_ENDPOINTS is truthy or SWEEP_AUTH=none, in this shell or in any env it would set;
when the plan's Postgres connections exceed DB_MAX_CONNECTIONS; when TRUSTED_PROXY_HOPS > 1
while the functions' own URLs stay reachable (ingress "all"); with `--load-balancer` unless
TRUSTED_PROXY_HOPS = 2 and ingress is "internal-and-gclb"; and, before deploying anything,
when the preflight (infra/deploy/prerequisites.py) finds a prerequisite missing: an API, a
role, a service account, the connector, the Memorystore connection policy, private services
access, the Cloud SQL instance or its IAM users, a secret the plan mounts (or an empty one),
Scheduler credentials, or with the load balancer its address and certificate. Every create
step treats "already exists" as done, so a re-run finishes what a failed run started.

The same Plan object is what `make dev`'s gateway and local scheduler serve and what the
platform stand-in of the tests (tests/platform/) runs: one description of the deployed shape.

Modules, in the order a deploy uses them: `config` (defaults.toml + --config), `planner` (the
Plan and the refusals), `renderer` (the dry-run text), `prerequisites` and `executor` (the
preflight and the runners), `cli`. Their names are nouns so that `deploy.plan`,
`deploy.render` and `deploy.execute` stay the functions this package exports.
"""

from __future__ import annotations

from infra.deploy.cli import main
from infra.deploy.config import DEFAULTS, REPO, TRUTHY, Config, DeployRefused, load_config, unsafe_settings
from infra.deploy.executor import (
    ALREADY_DONE,
    Runner,
    SecretReader,
    _run,
    _run_create,
    execute,
    mounted_secret_ids,
    preflight,
)
from infra.deploy.planner import (
    FunctionPlan,
    Plan,
    deploy_command,
    deployable,
    function_env,
    function_secrets,
    invoker_command,
    plan,
)
from infra.deploy.renderer import format_command, render

__all__ = [
    "ALREADY_DONE",
    "DEFAULTS",
    "REPO",
    "TRUTHY",
    "Config",
    "DeployRefused",
    "FunctionPlan",
    "Plan",
    "Runner",
    "SecretReader",
    "_run",
    "_run_create",
    "deploy_command",
    "deployable",
    "execute",
    "format_command",
    "function_env",
    "function_secrets",
    "invoker_command",
    "load_config",
    "main",
    "mounted_secret_ids",
    "plan",
    "preflight",
    "render",
    "unsafe_settings",
]
