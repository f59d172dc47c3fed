"""Configuration from environment variables only (Secret Manager injects secrets as env).

`load(required=...)` is called by every entry point module at import time, so a missing
required secret fails the cold start with a message naming the variable, instead of failing
the first request. Values are parsed and range-checked here, once, and each default is
written once: on its Settings field (`default("NAME")` reads it, for the deploy tooling).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from shared.errors import ConfigError

# Variables a deployment may mark as required; "A|B" means either one satisfies it.
DATABASE = "DATABASE_URL|CLOUD_SQL_INSTANCE"
VALKEY = "VALKEY_URL"
JWT_SECRET = "AUTH_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)
SCHEDULER_CALLER = ("SCHEDULER_AUDIENCE", "SCHEDULER_SERVICE_ACCOUNT")

# Variables that hold secrets: the deploy mounts them from Secret Manager, never as plain env.
SECRET_VARIABLES = (
    "DATABASE_URL",
    "DB_PASSWORD",
    "VALKEY_URL",
    "VALKEY_CA_CERT",
    "AUTH_JWT_SECRET",
    "AUTH_JWT_PREVIOUS_SECRETS",
    "OTP_HMAC_SECRET",
    "FAZPASS_MERCHANT_KEY",
    "FAZPASS_GATEWAY_KEY",
    "APPLE_PRIVATE_KEY",
    "APPLE_TOKEN_ENCRYPTION_KEY",
    "MIDTRANS_SERVER_KEY",
)
# Auth kinds whose guard checks our JWTs (and so needs the signing secret at cold start).
JWT_AUTH_KINDS = ("customer", "mitra", "cc", "cc_admin", "any")


def default(variable: str) -> Any:
    """The default of a setting, by its variable name (the Settings field is the one place)."""
    try:
        return _DEFAULTS[variable.lower()]
    except KeyError:
        raise ConfigError(f"{variable} is not a setting (no field of shared.config.Settings)") from None


def _env(name: str) -> str | None:
    """Read one variable, else its default; empty strings count as unset."""
    value = _current.get(name)
    return value if value not in (None, "") else default(name)


def _int(name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _current.get(name)
    if not raw:
        return int(default(name))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _float(name: str, *, minimum: float = 0.0, maximum: float = 1.0) -> float:
    raw = _current.get(name)
    if not raw:
        return float(default(name))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(name: str) -> bool:
    raw = _current.get(name)
    if not raw:
        return bool(default(name))
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0 or true/false, got {raw!r}")


def _list(name: str) -> tuple[str, ...]:
    raw = _current.get(name) or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _calling_codes(name: str) -> tuple[str, ...]:
    """Country calling codes (1-3 digits, `+` optional), the default when unset."""
    codes = tuple(code.removeprefix("+") for code in _list(name))
    for code in codes:
        if not (code.isascii() and code.isdigit() and 1 <= len(code) <= 3 and code[0] != "0"):
            raise ConfigError(f"{name} must list country calling codes such as 62, got {code!r}")
    return codes or tuple(default(name))


_current: Mapping[str, str] = os.environ

# Old names still accepted, each read as its new name with one deprecation line in the log.
RENAMED = {"VALKEY_ONLINE_MIRROR_SWEEP_SECONDS": "AVAILABILITY_RESEED_SWEEP_SECONDS"}


def _with_renamed(env: Mapping[str, str]) -> Mapping[str, str]:
    """`env` with each old name of RENAMED copied to its new name when only the old one is set."""
    old = [name for name in RENAMED if env.get(name) and not env.get(RENAMED[name])]
    if not old:
        return env
    for name in old:
        logging.getLogger(__name__).warning(
            "%s is deprecated: set %s instead", name, RENAMED[name], extra={"deprecated": name}
        )
    return {**env, **{RENAMED[name]: env[name] for name in old}}


@dataclass(frozen=True)
class Settings:
    """Every setting of the system, parsed. Build with `load()` or `Settings.from_env()`."""

    # Postgres
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    cloud_sql_instance: str | None = None
    db_user: str | None = None
    db_name: str | None = None
    db_password: str | None = field(default=None, repr=False)
    db_iam_auth: bool = False
    db_pool_size: int = 10
    db_pool_timeout_seconds: int = 5
    db_statement_timeout_ms: int = 15000
    # Valkey
    valkey_url: str | None = field(default=None, repr=False)
    valkey_cluster: bool = False
    valkey_prefix: str = "bestie:"
    valkey_timeout_seconds: float = 1.0
    # The CA that signs the server certificate of a rediss:// URL (Memorystore's own CA), as
    # PEM text (VALKEY_CA_CERT, a secret) or a file (VALKEY_CA_FILE, a mounted secret file).
    valkey_ca_cert: str | None = field(default=None, repr=False)
    valkey_ca_file: str | None = None
    # Tokens
    auth_jwt_secret: str | None = field(default=None, repr=False)
    auth_jwt_previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    auth_jwt_issuer: str = "bestie"
    access_token_ttl_seconds: int = 3600
    refresh_token_ttl_days: int = 30
    refresh_reuse_grace_seconds: int = 10
    # OTP / SMS
    otp_provider: str = "log"
    otp_hmac_secret: str | None = field(default=None, repr=False)
    fazpass_base_url: str = "https://api.fazpass.com"
    fazpass_merchant_key: str | None = field(default=None, repr=False)
    fazpass_gateway_key: str | None = field(default=None, repr=False)
    fazpass_timeout_seconds: float = 5.0
    # Customer codes go only to these country calling codes (SMS pumping costs real money).
    otp_allowed_country_codes: tuple[str, ...] = ("62",)
    # Push
    push_provider: str = "log"
    fcm_project_id: str | None = None
    push_timeout_seconds: float = 5.0  # per FCM HTTP attempt (firebase-admin's default is 120)
    push_queue_size: int = 10_000  # pushes waiting for a worker (~0.5 KB each); beyond it a push is dropped
    push_workers: int = 4  # threads sending pushes, off the request path
    push_message_preview: bool = False  # chat text and sender name in the push (else the app fetches)
    # Identity providers
    google_oauth_client_ids: tuple[str, ...] = ()
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    apple_services_id: str | None = None
    apple_bundle_ids: tuple[str, ...] = ()
    apple_jwks_url: str = "https://appleid.apple.com/auth/keys"
    apple_issuer: str = "https://appleid.apple.com"
    # Apple's token endpoints: the client secret (ES256, signed with the team's key) and the
    # AES-256-GCM key that encrypts the refresh tokens kept for revocation (docs/auth.md).
    apple_team_id: str | None = None
    apple_key_id: str | None = None
    apple_private_key: str | None = field(default=None, repr=False)
    apple_token_encryption_key: str | None = field(default=None, repr=False)
    apple_token_url: str = "https://appleid.apple.com/auth/token"  # noqa: S105 (a URL, not a secret)
    apple_revoke_url: str = "https://appleid.apple.com/auth/revoke"
    apple_android_package: str | None = None
    # Control center
    cc_origin: str | None = None
    # Web builds of the apps: the origins allowed by CORS on /api routes (none by default)
    app_web_origins: tuple[str, ...] = ()
    # Availability / pairing
    mitra_heartbeat_stale_seconds: int = 90
    pairing_blast_size: int = 25
    pairing_timeout_seconds: int = 120
    payment_timeout_seconds: int = 600
    # Sweeps
    mitra_auto_offline_sweep_seconds: int = 30
    heartbeat_mirror_interval_seconds: int = 60
    availability_reseed_sweep_seconds: int = 300
    session_expiry_sweep_seconds: int = 30
    retention_sweep_seconds: int = 3600
    auto_offline_max_fraction: float = 0.5
    auto_offline_breaker_min: int = 20
    sweep_auth: str = "oidc"
    scheduler_audience: str | None = None
    scheduler_service_account: str | None = None
    # HTTP
    enable_test_endpoints: bool = False
    trusted_proxy_hops: int = 1
    max_body_bytes: int = 64 * 1024
    google_cloud_project: str | None = None
    # Chat
    chat_max_waits_per_caller: int = 4  # concurrent long polls of one caller on one instance
    chat_max_wait_seconds: int = 25  # the longest a long poll is held; a longer `wait` is held this long
    # Passwords: the bcrypt work factor of new hashes (each step doubles a hash's cost). Tests
    # set 4; a deployment keeps 12 (docs/auth.md, "Passwords").
    bcrypt_cost: int = 12
    # Payments (docs/payments.md)
    payment_provider: str = "manual"  # manual (staff confirm) | midtrans (Snap)
    midtrans_server_key: str | None = field(default=None, repr=False)
    midtrans_production: bool = False  # false: the sandbox
    midtrans_snap_url: str | None = None  # unset: Midtrans's own (sandbox or production)
    midtrans_api_url: str | None = None  # unset: Midtrans's own (sandbox or production)
    midtrans_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, required: Sequence[str] = ()) -> Settings:
        """Parse `env` (default os.environ); raise ConfigError naming any missing required variable."""
        global _current
        previous, _current = _current, _with_renamed(os.environ if env is None else env)
        try:
            check_required(required, _current)
            return cls._parse()
        finally:
            _current = previous

    @classmethod
    def _parse(cls) -> Settings:
        _check_scheme("DATABASE_URL", ("postgresql://", "postgres://"))
        _check_scheme("VALKEY_URL", ("redis://", "rediss://"))
        _check_valkey_tls()
        prefix = _env("VALKEY_PREFIX") or ""
        if "{" in prefix or "}" in prefix:
            raise ConfigError("VALKEY_PREFIX must not contain '{' or '}' (it would change the hash tag)")
        sweep_auth = (_env("SWEEP_AUTH") or "").lower()
        if sweep_auth not in ("oidc", "none"):
            raise ConfigError(f"SWEEP_AUTH must be 'oidc' or 'none', got {sweep_auth!r}")
        enable_test = _bool("ENABLE_TEST_ENDPOINTS")
        if sweep_auth == "none" and not enable_test:
            raise ConfigError("SWEEP_AUTH=none is only allowed together with ENABLE_TEST_ENDPOINTS=1")
        return cls(
            database_url=_env("DATABASE_URL"),
            cloud_sql_instance=_env("CLOUD_SQL_INSTANCE"),
            db_user=_env("DB_USER"),
            db_name=_env("DB_NAME"),
            db_password=_env("DB_PASSWORD"),
            db_iam_auth=_bool("DB_IAM_AUTH"),
            db_pool_size=_int("DB_POOL_SIZE", minimum=1, maximum=200),
            db_pool_timeout_seconds=_int("DB_POOL_TIMEOUT_SECONDS", minimum=1, maximum=120),
            db_statement_timeout_ms=_int("DB_STATEMENT_TIMEOUT_MS", minimum=0),
            valkey_url=_env("VALKEY_URL"),
            valkey_cluster=_bool("VALKEY_CLUSTER"),
            valkey_prefix=prefix,
            valkey_timeout_seconds=_float("VALKEY_TIMEOUT_SECONDS", minimum=0.05, maximum=60.0),
            valkey_ca_cert=_env("VALKEY_CA_CERT"),
            valkey_ca_file=_env("VALKEY_CA_FILE"),
            auth_jwt_secret=_env("AUTH_JWT_SECRET"),
            auth_jwt_previous_secrets=_list("AUTH_JWT_PREVIOUS_SECRETS"),
            auth_jwt_issuer=_env("AUTH_JWT_ISSUER") or "",
            access_token_ttl_seconds=_int("ACCESS_TOKEN_TTL_SECONDS", minimum=30, maximum=86400),
            refresh_token_ttl_days=_int("REFRESH_TOKEN_TTL_DAYS", minimum=1, maximum=365),
            refresh_reuse_grace_seconds=_int("REFRESH_REUSE_GRACE_SECONDS", minimum=0, maximum=300),
            otp_provider=(_env("OTP_PROVIDER") or "").lower(),
            otp_hmac_secret=_env("OTP_HMAC_SECRET"),
            fazpass_base_url=_env("FAZPASS_BASE_URL") or "",
            fazpass_merchant_key=_env("FAZPASS_MERCHANT_KEY"),
            fazpass_gateway_key=_env("FAZPASS_GATEWAY_KEY"),
            fazpass_timeout_seconds=_float("FAZPASS_TIMEOUT_SECONDS", minimum=0.1, maximum=60.0),
            otp_allowed_country_codes=_calling_codes("OTP_ALLOWED_COUNTRY_CODES"),
            push_provider=(_env("PUSH_PROVIDER") or "").lower(),
            fcm_project_id=_env("FCM_PROJECT_ID"),
            push_timeout_seconds=_float("PUSH_TIMEOUT_SECONDS", minimum=0.5, maximum=30.0),
            push_queue_size=_int("PUSH_QUEUE_SIZE", minimum=1, maximum=100_000),
            push_workers=_int("PUSH_WORKERS", minimum=1, maximum=64),
            push_message_preview=_bool("PUSH_MESSAGE_PREVIEW"),
            google_oauth_client_ids=_list("GOOGLE_OAUTH_CLIENT_IDS"),
            google_certs_url=_env("GOOGLE_CERTS_URL") or "",
            apple_services_id=_env("APPLE_SERVICES_ID"),
            apple_bundle_ids=_list("APPLE_BUNDLE_IDS"),
            apple_jwks_url=_env("APPLE_JWKS_URL") or "",
            apple_issuer=_env("APPLE_ISSUER") or "",
            apple_team_id=_env("APPLE_TEAM_ID"),
            apple_key_id=_env("APPLE_KEY_ID"),
            apple_private_key=_env("APPLE_PRIVATE_KEY"),
            apple_token_encryption_key=_env("APPLE_TOKEN_ENCRYPTION_KEY"),
            apple_token_url=_env("APPLE_TOKEN_URL") or "",
            apple_revoke_url=_env("APPLE_REVOKE_URL") or "",
            apple_android_package=_env("APPLE_ANDROID_PACKAGE"),
            cc_origin=_env("CC_ORIGIN"),
            app_web_origins=_list("APP_WEB_ORIGINS"),
            mitra_heartbeat_stale_seconds=_int("MITRA_HEARTBEAT_STALE_SECONDS", minimum=5),
            pairing_blast_size=_int("PAIRING_BLAST_SIZE", minimum=1, maximum=500),
            pairing_timeout_seconds=_int("PAIRING_TIMEOUT_SECONDS", minimum=5),
            payment_timeout_seconds=_int("PAYMENT_TIMEOUT_SECONDS", minimum=10),
            mitra_auto_offline_sweep_seconds=_int("MITRA_AUTO_OFFLINE_SWEEP_SECONDS", minimum=1),
            heartbeat_mirror_interval_seconds=_int("HEARTBEAT_MIRROR_INTERVAL_SECONDS", minimum=1),
            availability_reseed_sweep_seconds=_int("AVAILABILITY_RESEED_SWEEP_SECONDS", minimum=1),
            session_expiry_sweep_seconds=_int("SESSION_EXPIRY_SWEEP_SECONDS", minimum=1),
            retention_sweep_seconds=_int("RETENTION_SWEEP_SECONDS", minimum=60),
            auto_offline_max_fraction=_float("AUTO_OFFLINE_MAX_FRACTION"),
            auto_offline_breaker_min=_int("AUTO_OFFLINE_BREAKER_MIN", minimum=0),
            sweep_auth=sweep_auth,
            scheduler_audience=_env("SCHEDULER_AUDIENCE"),
            scheduler_service_account=_env("SCHEDULER_SERVICE_ACCOUNT"),
            enable_test_endpoints=enable_test,
            trusted_proxy_hops=_int("TRUSTED_PROXY_HOPS", minimum=0, maximum=10),
            max_body_bytes=_int("MAX_BODY_BYTES", minimum=1024, maximum=10 * 1024 * 1024),
            google_cloud_project=_env("GOOGLE_CLOUD_PROJECT"),
            chat_max_waits_per_caller=_int("CHAT_MAX_WAITS_PER_CALLER", minimum=1, maximum=1000),
            chat_max_wait_seconds=_int("CHAT_MAX_WAIT_SECONDS", minimum=1, maximum=25),
            bcrypt_cost=_int("BCRYPT_COST", minimum=4, maximum=31),
            payment_provider=(_env("PAYMENT_PROVIDER") or "").lower(),
            midtrans_server_key=_env("MIDTRANS_SERVER_KEY"),
            midtrans_production=_bool("MIDTRANS_PRODUCTION"),
            midtrans_snap_url=_env("MIDTRANS_SNAP_URL"),
            midtrans_api_url=_env("MIDTRANS_API_URL"),
            midtrans_timeout_seconds=_float("MIDTRANS_TIMEOUT_SECONDS", minimum=0.5, maximum=60.0),
        )


# Field name -> default: the one place each default is written (the parser, the deploy's cadence
# of a sweep and the README all take it from here).
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def _check_scheme(name: str, schemes: tuple[str, ...]) -> None:
    value = _env(name)
    if value is not None and not value.startswith(schemes):
        raise ConfigError(f"{name} must start with {' or '.join(schemes)}")  # the value may hold a password


def _check_valkey_tls() -> None:
    """A TLS setting that cannot work fails the cold start, not every call (which would fall back).

    Memorystore's in-transit encryption uses a per-instance CA that no system trust store holds
    (https://cloud.google.com/memorystore/docs/valkey/about-in-transit-encryption), so a
    rediss:// URL without that CA would fail every handshake and silently run on the Postgres
    fallback forever.
    """
    url = _env("VALKEY_URL")
    pem, path = _env("VALKEY_CA_CERT"), _env("VALKEY_CA_FILE")
    if url is None:
        return
    if pem and path:
        raise ConfigError("set VALKEY_CA_CERT or VALKEY_CA_FILE, not both")
    tls = url.startswith("rediss://")
    if not tls:
        if pem or path:
            raise ConfigError("VALKEY_CA_CERT / VALKEY_CA_FILE is set but VALKEY_URL is not rediss:// (TLS)")
        return
    if not (pem or path):
        raise ConfigError("VALKEY_URL is rediss:// (TLS) but no CA is configured: set VALKEY_CA_CERT or VALKEY_CA_FILE")
    try:
        # Only the PEM is checked: a bare client context, not create_default_context(), which
        # loads the system trust store (~30 ms of CPU) on each of a main.py's endpoint declarations.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if pem:
            context.load_verify_locations(cadata=pem)
        else:
            context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise ConfigError(f"VALKEY_CA_FILE {path} does not exist") from None
    except (ssl.SSLError, ValueError):
        name = "VALKEY_CA_CERT" if pem else "VALKEY_CA_FILE"
        raise ConfigError(f"{name} is not a PEM certificate") from None


def required_for(auth: str, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """What a function of this auth kind cannot start without (checked at import)."""
    source = os.environ if env is None else env
    if auth in JWT_AUTH_KINDS:
        return (DATABASE, VALKEY, JWT_SECRET)
    if auth == "scheduler" and (source.get("SWEEP_AUTH") or "oidc").lower() != "none":
        return (DATABASE, VALKEY, *SCHEDULER_CALLER)
    return (DATABASE, VALKEY)


def check_required(required: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError naming the first of `required` ("A|B": either) unset in `env` (default os.environ)."""
    source = os.environ if env is None else env
    for spec in required:
        names = spec.split("|")
        if not any(source.get(name) for name in names):
            label = " or ".join(names)
            raise ConfigError(f"missing required environment variable {label}")


def load(required: Sequence[str] = (DATABASE, VALKEY)) -> Settings:
    """Parse os.environ at cold start; fail naming the first missing required variable."""
    return Settings.from_env(required=required)
