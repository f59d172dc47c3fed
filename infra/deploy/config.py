"""Deployment-wide settings: defaults.toml merged with --config, and the dev-only switches a deploy refuses."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = Path(__file__).with_name("defaults.toml")
TRUTHY = ("1", "true", "yes", "on")


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
    db_surge_margin: float = 0.1  # room for Cloud Run briefly exceeding max instances (budget.py)
    network: str = "bestie"  # the VPC of Cloud SQL's private IP and Memorystore's endpoints
    migrate_service_account: str | None = None  # the migration job's identity (its Cloud SQL IAM user)
    migrate_job: str = "bestie-migrate"  # the Cloud Run job that migrates before functions roll out
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    secret_files: dict[str, str] = field(default_factory=dict)  # mount path -> secret id, every function
    secret_versions: dict[str, str] = field(default_factory=dict)  # secret id -> the version every instance mounts


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
    data["secret_versions"] = {k: str(v) for k, v in data.get("secret_versions", {}).items()}
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
