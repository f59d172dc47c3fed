"""What a project must have before the first deploy, each read with a gcloud describe/list command.

Every prerequisite is one read-only command (`--format=json`) and a rule that turns its output
into what is missing, naming the docs/deployment.md step that creates it. The preflight runs
the commands through the executor's reader (so each is printed as it runs); the dry run prints
the same commands, so a new project's dry run lists every prerequisite step. Nothing here
creates anything.

What can be read this way: enabled APIs, the deployer's project roles, service accounts, the
Serverless VPC Access connector, the Memorystore service connection policy, Cloud SQL's
private services access, the Cloud SQL instance and its IAM users, and (with the load balancer)
its address and certificate. Roles granted through a group, a folder or the organization are
not visible in the project's policy; the message says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from infra.deploy.config import Config
from infra.deploy.planner import Plan

Reader = Callable[[Sequence[str]], "str | None"]  # argv -> stdout, or None when the command failed
ACCOUNT_COMMAND = ("gcloud", "config", "get-value", "account")
ACCOUNT_PLACEHOLDER = "$(gcloud config get-value account)"

# https://cloud.google.com/memorystore/docs/valkey/networking: Memorystore for Valkey creates its
# Private Service Connect endpoints through a service connection policy of this service class.
MEMORYSTORE_SERVICE_CLASS = "gcp-memorystore"
# https://cloud.google.com/sql/docs/postgres/configure-private-services-access: Cloud SQL private IP
# needs a private connection to this service over an allocated range.
SERVICE_NETWORKING = "servicenetworking.googleapis.com"

APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "sqladmin.googleapis.com",
    "memorystore.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "vpcaccess.googleapis.com",
    "compute.googleapis.com",
    "networkconnectivity.googleapis.com",
    "serviceconsumermanagement.googleapis.com",
    SERVICE_NETWORKING,
    "iam.googleapis.com",
)
FCM_API = "fcm.googleapis.com"  # Firebase Cloud Messaging API (HTTP v1), needed with PUSH_PROVIDER=fcm

# The deployer's roles (docs/deployment.md step 3). Cloud Functions Admin holds
# cloudfunctions.functions.setIamPolicy and run.*, which --allow-unauthenticated and the sweeps'
# invoker bindings (set on the underlying Cloud Run service) need; Cloud Functions Developer
# does not (https://cloud.google.com/functions/docs/reference/iam/roles).
DEPLOYER_ROLES = (
    "roles/cloudfunctions.admin",
    "roles/iam.serviceAccountUser",
    "roles/cloudscheduler.admin",
    "roles/secretmanager.secretAccessor",
)
LOAD_BALANCER_ROLE = "roles/compute.loadBalancerAdmin"


@dataclass(frozen=True)
class Prerequisite:
    """One thing the deploy needs that it does not create, and how to read it."""

    what: str
    step: str  # the docs/deployment.md step that creates it
    argv: tuple[str, ...]
    missing: Callable[[Any], str | None]  # parsed JSON output (None: the command failed) -> problem


def _names(items: Any, key: str) -> set[str]:
    return {str(item.get(key, "")) for item in items or [] if isinstance(item, dict)}


def _apis_missing(wanted: Iterable[str]) -> Callable[[Any], str | None]:
    def check(enabled: Any) -> str | None:
        names = {
            str((item.get("config") or {}).get("name") or item.get("name", "").rsplit("/", 1)[-1])
            for item in enabled or []
        }
        absent = [api for api in wanted if api not in names]
        return f"APIs not enabled: {', '.join(absent)}" if absent else None

    return check


def _roles_missing(member: str, wanted: Sequence[str]) -> Callable[[Any], str | None]:
    def check(policy: Any) -> str | None:
        held = {b.get("role") for b in (policy or {}).get("bindings", []) if member in b.get("members", [])}
        if "roles/owner" in held:
            return None
        absent = [role for role in wanted if role not in held]
        if not absent:
            return None
        return (
            f"{member} is not granted {', '.join(absent)} on the project (a grant through a group,"
            " folder or organization is not visible here: check it before going on)"
        )

    return check


def _exists(what: str) -> Callable[[Any], str | None]:
    return lambda found: None if found else f"{what} does not exist"


def _accounts_missing(emails: Sequence[str]) -> Callable[[Any], str | None]:
    def check(accounts: Any) -> str | None:
        absent = [email for email in emails if email not in _names(accounts, "email")]
        return f"service accounts missing: {', '.join(absent)}" if absent else None

    return check


def _policy_missing(network: str) -> Callable[[Any], str | None]:
    def check(policies: Any) -> str | None:
        for policy in policies or []:
            if policy.get("serviceClass") == MEMORYSTORE_SERVICE_CLASS and policy.get("network", "").endswith(
                f"/networks/{network}"
            ):
                return None
        return (
            f"no service connection policy for {MEMORYSTORE_SERVICE_CLASS} in network {network}:"
            " Memorystore creation fails"
        )

    return check


def _peering_missing(network: str) -> Callable[[Any], str | None]:
    def check(peerings: Any) -> str | None:
        for peering in peerings or []:
            if peering.get("service", "").endswith(SERVICE_NETWORKING) and peering.get("reservedPeeringRanges"):
                return None
        return (
            f"no private services access in network {network} (allocated range + private connection to"
            f" {SERVICE_NETWORKING}): Cloud SQL private IP fails"
        )

    return check


def _sql_instance_missing(network: str, iam_auth: bool) -> Callable[[Any], str | None]:
    def check(instance: Any) -> str | None:
        if not instance:
            return "the Cloud SQL instance does not exist"
        settings = instance.get("settings", {})
        problems = []
        if not settings.get("ipConfiguration", {}).get("privateNetwork", "").endswith(f"/networks/{network}"):
            problems.append(f"has no private IP in network {network}")
        flags = {f.get("name"): f.get("value") for f in settings.get("databaseFlags", [])}
        if iam_auth and flags.get("cloudsql.iam_authentication") != "on":
            problems.append("lacks the flag cloudsql.iam_authentication=on")
        return f"the Cloud SQL instance {'; '.join(problems)}" if problems else None

    return check


def _sql_users_missing(users: Sequence[str]) -> Callable[[Any], str | None]:
    def check(found: Any) -> str | None:
        absent = [user for user in users if user not in _names(found, "name")]
        return f"Cloud SQL IAM users missing: {', '.join(absent)}" if absent else None

    return check


def _certificate_missing(name: str) -> Callable[[Any], str | None]:
    def check(cert: Any) -> str | None:
        if not cert:
            return f"the certificate {name} does not exist"
        failed = {
            d: s for d, s in (cert.get("managed") or {}).get("domainStatus", {}).items() if s.startswith("FAILED")
        }
        if failed:
            return f"the certificate {name} failed for {failed}: the domain's DNS A record must name the address"
        return None

    return check


def _account_email(account: str) -> str:
    """`projects/P/serviceAccounts/EMAIL` or EMAIL -> EMAIL."""
    return account.rsplit("/", 1)[-1]


def _member(account: str) -> str:
    kind = "serviceAccount" if account.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{account}"


def prerequisites(p: Plan, account: str = ACCOUNT_PLACEHOLDER) -> list[Prerequisite]:
    """Every prerequisite of this plan, in the order docs/deployment.md creates them."""
    c: Config = p.config
    at = (f"--project={c.project}", "--format=json")
    apis = [*APIS, *([FCM_API] if c.env.get("PUSH_PROVIDER", "").lower() == "fcm" else [])]
    roles = [*DEPLOYER_ROLES, *([LOAD_BALANCER_ROLE] if p.load_balancer else [])]
    accounts = [c.service_account, c.scheduler_service_account]
    if c.build_service_account:
        accounts.append(_account_email(c.build_service_account))
    if c.migrate_service_account:
        accounts.append(c.migrate_service_account)
    connector = c.vpc_connector.rsplit("/", 1)[-1]
    found = [
        Prerequisite(
            "the APIs the deploy and the functions call",
            "step 2",
            ("gcloud", "services", "list", "--enabled", *at),
            _apis_missing(apis),
        ),
        Prerequisite(
            "the deployer's roles",
            "step 3",
            ("gcloud", "projects", "get-iam-policy", c.project, "--format=json"),
            _roles_missing(_member(account), roles),
        ),
        Prerequisite(
            "the service accounts",
            "step 3",
            ("gcloud", "iam", "service-accounts", "list", *at),
            _accounts_missing(accounts),
        ),
        Prerequisite(
            f"the Serverless VPC Access connector {connector}",
            "step 4",
            (
                "gcloud",
                "compute",
                "networks",
                "vpc-access",
                "connectors",
                "describe",
                connector,
                f"--region={c.region}",
                *at,
            ),
            _exists(f"the Serverless VPC Access connector {connector}"),
        ),
        Prerequisite(
            f"the service connection policy for {MEMORYSTORE_SERVICE_CLASS}",
            "step 4",
            ("gcloud", "network-connectivity", "service-connection-policies", "list", f"--region={c.region}", *at),
            _policy_missing(c.network),
        ),
        Prerequisite(
            "private services access for Cloud SQL",
            "step 4",
            ("gcloud", "services", "vpc-peerings", "list", f"--network={c.network}", *at),
            _peering_missing(c.network),
        ),
    ]
    sql = c.env.get("CLOUD_SQL_INSTANCE", "")
    if sql:
        instance = sql.rsplit(":", 1)[-1]
        iam_auth = c.env.get("DB_IAM_AUTH", "") in ("1", "true", "yes", "on")
        users = [c.env.get("DB_USER", "")] if iam_auth else []
        if c.migrate_service_account:
            users.append(c.migrate_service_account.removesuffix(".gserviceaccount.com"))
        found.append(
            Prerequisite(
                f"the Cloud SQL instance {instance}",
                "step 5",
                ("gcloud", "sql", "instances", "describe", instance, *at),
                _sql_instance_missing(c.network, iam_auth),
            )
        )
        if users:
            found.append(
                Prerequisite(
                    "the Cloud SQL IAM users",
                    "step 5",
                    ("gcloud", "sql", "users", "list", f"--instance={instance}", *at),
                    _sql_users_missing([u for u in users if u]),
                )
            )
    if p.load_balancer:
        address, cert = f"{c.load_balancer}-ip", f"{c.load_balancer}-cert"
        found += [
            Prerequisite(
                f"the load balancer's address {address}",
                "step 12",
                ("gcloud", "compute", "addresses", "describe", address, "--global", *at),
                _exists(f"the global address {address}"),
            ),
            Prerequisite(
                f"the managed certificate {cert}",
                "step 12",
                ("gcloud", "compute", "ssl-certificates", "describe", cert, "--global", *at),
                _certificate_missing(cert),
            ),
        ]
    return found


def mounted_secrets(p: Plan) -> list[str]:
    """Every `secret-id:version` the plan mounts (functions and the migration job)."""
    mounts = {mount for fp in p.functions for mount in fp.secrets.values()}
    return sorted(mounts | set(p.migration_secrets.values()))


def secret_read_command(project: str, mount: str) -> tuple[str, ...]:
    """Read the mounted version of a secret (`secret-id:version`), as the preflight does."""
    secret, _, version = mount.rpartition(":")
    return ("gcloud", "secrets", "versions", "access", version, f"--secret={secret}", f"--project={project}")


def read_account(read: Reader) -> str:
    """The account gcloud runs as (the deployer), or the placeholder when none is set."""
    out = (read(ACCOUNT_COMMAND) or "").strip()
    return out or ACCOUNT_PLACEHOLDER


def missing(p: Plan, read: Reader) -> list[str]:
    """Run every prerequisite's command through `read`; what is missing, each with its step."""
    problems = []
    for item in prerequisites(p, read_account(read)):
        out = read(item.argv)
        try:
            parsed = json.loads(out) if out and out.strip() else None
        except json.JSONDecodeError:
            parsed = None
        problem = item.missing(parsed)
        if problem:
            problems.append(f"{problem} (docs/deployment.md {item.step})")
    return problems
