"""A stand-in for the Google Cloud platform the deploy plan describes, on loopback.

It reads the same `infra.deploy.Plan` the deploy tool executes and `make dev` serves, and
reproduces what Google's infrastructure does around our code, each behaviour from its doc:

- Functions as deployed: every function of the plan runs in its own process, from its built
  bundle (`build/<group>/`, nothing of the repository importable), loaded by
  functions-framework's `create_app` as the Python runtime loads it and served by its
  production server (gunicorn, one worker, THREADS threads), with exactly the env vars and
  secret names its deploy command sets plus the variables the platform sets itself.
  A function starts on its first request (a cold start). With `shared_processes`, functions
  of one group whose env and secret mounts are identical share one such process (main.py
  loaded once per function; K_SERVICE names the first of them), to start a whole plan cheaply.
- Secret Manager: numbered versions per secret; each instance resolves its env-var secrets
  (`secret:version`, `latest` = the newest) once, when it starts, so instances started before
  and after a new version differ unless the version is pinned
  (https://cloud.google.com/run/docs/configuring/services/secrets).
  https://cloud.google.com/run/docs/runtimes/python
  https://cloud.google.com/functions/docs/configuring/env-var#runtime_environment_variables_set_automatically
- Its own URL: `https://REGION-PROJECT.cloudfunctions.net/NAME/rest` reaches the function
  with the path `/rest`, the root of its own URL.
  https://cloud.google.com/functions/docs/calling/http
- The external Application Load Balancer: the plan's URL map picks the backend
  (https://cloud.google.com/load-balancing/docs/url-map-concepts#routing-requests), OPTIONS
  included, the function receives the full path, and the front end appends
  `<client-ip>,<load-balancer-ip>` to X-Forwarded-For
  (https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header).
- Ingress: with `internal-and-gclb`, a function URL answers only the load balancer and
  internal sources such as Cloud Scheduler (https://cloud.google.com/run/docs/securing/ingress).
- The deploy's IAM steps succeed only with the deployer's roles: `--allow-unauthenticated`
  and the sweeps' invoker bindings set the IAM policy of each function's Cloud Run service,
  which needs `cloudfunctions.functions.setIamPolicy` / `run.services.setIamPolicy`: Cloud
  Functions Admin (or Owner) has them, Developer does not
  (https://cloud.google.com/functions/docs/reference/iam/roles). With roles that lack them,
  `refused` records each IAM step and the function answers nobody (403).
- Cloud Run IAM on private functions: the caller's Google-signed ID token must verify, be
  for the function's URL and name a member with the invoker role, else 401/403; the token
  is then forwarded with its signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`
  (https://cloud.google.com/run/docs/troubleshooting#signature-removed,
  https://cloud.google.com/run/docs/authenticating/service-to-service). When the request
  carries `X-Serverless-Authorization`, that is the token IAM checks (and forwards without
  its signature), and `Authorization` passes through untouched, whatever it holds
  (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token).
- Request headers: X-Cloud-Trace-Context and traceparent on every request
  (https://cloud.google.com/trace/docs/trace-context).
- Cloud Scheduler: `fire(job)` sends a job's request exactly as defined (URI, method, headers,
  body) with the headers Scheduler adds and an OIDC token for the job's service account and
  audience (the URI when unset)
  (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#HttpTarget,
  https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#OidcToken).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from google.cloud import scheduler_v1
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from infra import bundle
from infra.deploy import Plan, prerequisites, urlmap
from infra.embedded import free_port
from tests.support.loopback import RsaKey

REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
# Predefined roles holding the setIamPolicy permissions the deploy's IAM steps use.
SET_IAM_POLICY_ROLES = {"roles/owner", "roles/cloudfunctions.admin", "roles/run.admin"}
LB_IP = "34.120.0.10"  # the load balancer's address as the backend sees it
GOOGLE_ISSUER = "https://accounts.google.com"
START_TIMEOUT_SECONDS = 60.0

# What the serving process runs inside the bundle: what functions-framework's command line
# does in production (functions_framework/_cli.py): load main.py with create_app, then serve it
# with the production server, gunicorn's threaded worker with THREADS threads (_http/gunicorn.py),
# the THREADS the plan sets from the function's concurrency. A process shared by several
# functions (`Platform.shared_processes`) loads main.py once per function, as each of their
# instances would, and picks the function by the header the stand-in's front end adds.
_SERVE = """
import os
import flask
import functions_framework
from functions_framework._http import create_server

targets = dict(pair.split("=") for pair in os.environ.get("STANDIN_FUNCTIONS", "").split(",") if pair)
if not targets:
    app = functions_framework.create_app(target=os.environ["FUNCTION_TARGET"], source="main.py")
else:
    apps = {name: functions_framework.create_app(target=entry, source="main.py") for name, entry in targets.items()}
    if all(isinstance(one, flask.Flask) for one in apps.values()):

        def dispatch(environ, start_response):
            return apps[environ.pop("HTTP_X_STANDIN_FUNCTION")](environ, start_response)

        app = flask.Flask("standin")
        app.wsgi_app = dispatch
    else:  # ASGI functions (functions_framework.aio), served by uvicorn workers as in production

        async def app(scope, receive, send):
            if scope["type"] != "http":  # lifespan: none of the apps has startup work of its own
                return await next(iter(apps.values()))(scope, receive, send)
            key = b"x-standin-function"
            name = dict(scope["headers"])[key].decode()
            headers = [(k, v) for k, v in scope["headers"] if k != key]
            return await apps[name]({**scope, "headers": headers}, receive, send)
create_server(app, debug=False).run("127.0.0.1", int(os.environ["PORT"]))
"""
STANDIN_FUNCTION = "X-Standin-Function"  # which function of a shared process a request is for


class ColdStartFailed(RuntimeError):
    """Raised when a function's process exits before it listens (an import-time failure)."""

    def __init__(self, name: str, output: str) -> None:
        super().__init__(f"{name} failed to start:\n{output}")
        self.output = output


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class SecretManager:
    """Secret versions, numbered from 1 in the order they were added."""

    versions: dict[str, list[str]] = field(default_factory=dict)

    def add(self, secret: str, value: str) -> str:
        """Add a version; return its number."""
        self.versions.setdefault(secret, []).append(value)
        return str(len(self.versions[secret]))

    def access(self, mount: str) -> str:
        """The value of `secret:version` now (`latest`: the newest version)."""
        secret, _, version = mount.rpartition(":")
        values = self.versions[secret]
        return values[-1] if version == "latest" else values[int(version) - 1]


@dataclass(frozen=True)
class Network:
    """What the project holds before the deploy besides roles (docs/deployment.md steps 2 and 4).

    Each absent piece refuses the step Google documents as failing without it:
    - `connection_policy`: Memorystore for Valkey creates its endpoints through a service
      connection policy of class gcp-memorystore in the network and region; without one,
      `memorystore instances create` fails (https://cloud.google.com/memorystore/docs/valkey/networking).
    - `private_services_access`: a private-IP-only Cloud SQL instance needs an allocated range and
      a private connection to servicenetworking.googleapis.com; without them its creation fails
      (https://cloud.google.com/sql/docs/postgres/configure-private-ip).
    - `egress_path`: the Serverless VPC Access connector every function's deploy names; a deploy
      naming one that does not exist fails, so the function does not exist (404)
      (https://cloud.google.com/vpc/docs/serverless-vpc-access).
    - `fcm_api`: a call to an API that is not enabled in the project is refused, so with the
      Firebase Cloud Messaging API disabled every push send fails
      (https://cloud.google.com/service-usage/docs/enable-disable).
    - `dns`: a Google-managed certificate provisions only once the domain's DNS A record names
      the load balancer's address; until then the load balancer serves no HTTPS and the host does
      not resolve (https://cloud.google.com/load-balancing/docs/ssl-certificates/google-managed-certs).
    """

    connection_policy: bool = True
    private_services_access: bool = True
    egress_path: bool = True
    fcm_api: bool = True
    dns: bool = True


class HostUnreachable(ConnectionError):
    """Raised for a request to the load balancer's host when it serves nothing (no DNS record)."""


@dataclass
class Platform:
    """The plan's functions, load balancer, IAM and scheduler, served as one WSGI app."""

    plan: Plan
    secret_values: Mapping[str, str]
    workdir: Path
    google: RsaKey = field(default_factory=RsaKey)
    instances: dict[str, Instance] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    secret_manager: SecretManager | None = None  # default: each of secret_values as version 1
    deployer_roles: tuple[str, ...] = prerequisites.DEPLOYER_ROLES  # default: the documented ones
    # One process for all functions of a group whose env and secret mounts are identical (each
    # still loaded from main.py on its own), instead of one process per function: for tests that
    # need every function up at once and check each function's answer, not its isolation.
    shared_processes: bool = False
    network: Network = field(default_factory=Network)  # default: every step 2 and 4 prerequisite

    def __post_init__(self) -> None:
        if self.secret_manager is None:
            ids = self.plan.config.secrets
            self.secret_manager = SecretManager({ids.get(k, k): [v] for k, v in self.secret_values.items()})
        self.bundles = self.workdir / "build"  # built before the first function starts
        self._built = threading.Lock()
        self.by_name = {fp.fn.name: fp for fp in self.plan.functions}
        public = [fp.fn for fp in self.plan.functions if fp.public]
        self.backends = urlmap.backends(public, self.plan.config.project, self.plan.config.load_balancer)
        self.function_host = urlsplit(self.plan.functions[0].url).netloc
        self.extra_invokers: dict[str, set[str]] = {}
        self.refused: list[str] = []  # IAM steps the deployer's roles could not carry out
        if not SET_IAM_POLICY_ROLES & set(self.deployer_roles):
            for fp in self.plan.functions:
                step = "--allow-unauthenticated" if fp.public else " ".join(fp.after[0][:4]) if fp.after else "IAM"
                self.refused.append(f"{fp.fn.name}: {step} needs setIamPolicy, which {list(self.deployer_roles)} lack")
        self.unbound = {entry.split(":", 1)[0] for entry in self.refused}
        self.undeployed: set[str] = set()  # functions whose deploy failed: they do not exist
        self.refused += self._network_refusals()
        self.served_by: dict[str, str] = {}  # function -> the function whose process serves it
        first: dict[tuple[object, ...], str] = {}
        for fp in self.plan.functions:
            key = (fp.fn.group, *sorted(fp.env.items()), *sorted(fp.secrets.items()))
            self.served_by[fp.fn.name] = first.setdefault(key if self.shared_processes else (fp.fn.name,), fp.fn.name)

    def _network_refusals(self) -> list[str]:
        """The deploy steps the project's network refuses (see `Network`), each recorded once."""
        c, net, found = self.plan.config, self.network, []
        where = f"network {c.network} ({c.region})"
        if not net.connection_policy:
            found.append(
                f"memorystore: gcloud memorystore instances create needs a service connection policy"
                f" for {prerequisites.MEMORYSTORE_SERVICE_CLASS} in {where}"
            )
        if not net.private_services_access:
            found.append(
                f"cloud-sql: gcloud sql instances create --no-assign-ip needs private services access"
                f" ({prerequisites.SERVICE_NETWORKING}) in {where}"
            )
        if not net.egress_path:
            for fp in self.plan.functions:
                found.append(f"{fp.fn.name}: gcloud functions deploy names {c.vpc_connector}, which does not exist")
                self.undeployed.add(fp.fn.name)
        if not net.fcm_api and c.env.get("PUSH_PROVIDER", "").lower() == "fcm":
            for fp in self.plan.functions:
                if fp.fn.pushes:
                    found.append(f"{fp.fn.name}: FCM sends refused, {prerequisites.FCM_API} is not enabled")
        if not net.dns and self.plan.load_balancer:
            found.append(
                f"load-balancer: the managed certificate {c.load_balancer}-cert never provisions,"
                " no DNS A record names the load balancer's address"
            )
        return found

    # ---- functions ------------------------------------------------------------------------

    def environment(self, name: str, drop: Iterable[str] = ()) -> dict[str, str]:
        """Exactly what the deployed function's process gets: its env, its secrets, the platform's."""
        fp = self.by_name[name]
        env = dict(fp.env)
        assert self.secret_manager is not None
        for var, mount in fp.secrets.items():
            if var.startswith("/"):
                continue  # a secret file; none in the stand-in's plan
            env[var] = self.secret_manager.access(mount)  # resolved now: this instance's start
        for var in drop:
            env.pop(var, None)
        env.update(
            {
                "PORT": "0",
                "K_SERVICE": name,
                "K_REVISION": f"{name}-00001-abc",
                "K_CONFIGURATION": name,
                "FUNCTION_TARGET": fp.fn.entry_point,
                "FUNCTION_SIGNATURE_TYPE": "http",
            }
        )
        return env

    def start(self, name: str, drop: Iterable[str] = ()) -> Instance:
        """Cold-start one function from its bundle; raise ColdStartFailed if it dies first."""
        fp = self.by_name[name]
        with self._built:
            if not self.bundles.exists():
                bundle.build_all(self.bundles, self.plan.groups)
        port = free_port()
        env = {**self.environment(name, drop), "PORT": str(port)}
        if self.shared_processes:
            served = [other for other, by in self.served_by.items() if by == name]
            env["STANDIN_FUNCTIONS"] = ",".join(f"{other}={self.by_name[other].fn.entry_point}" for other in served)
        log_path = self.workdir / "logs" / f"{name}-{uuid.uuid4().hex[:6]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        source = self.bundles / fp.fn.group
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                bundle.isolated_python(source, _SERVE),
                cwd=source,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended whole by `stop`
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ColdStartFailed(name, log_path.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return Instance(name, port, process, log_path)
            except OSError:
                time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        raise ColdStartFailed(name, "did not listen in time\n" + log_path.read_text())

    def instance(self, name: str) -> Instance:
        """The running process serving `name` (cold-started on first use)."""
        key = self.served_by[name]
        with self._lock:
            if key not in self.instances:
                self.instances[key] = self.start(key)
            return self.instances[key]

    def start_all(self, names: Iterable[str]) -> None:
        """Cold-start several functions in parallel (two at a time per CPU)."""
        todo = list(dict.fromkeys(self.served_by[n] for n in names if self.served_by[n] not in self.instances))
        threads = []
        for chunk in (todo[i::4] for i in range(4)):
            thread = threading.Thread(target=lambda c=chunk: [self.instance(n) for n in c], daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    def stop(self) -> None:
        """End every instance at once: SIGKILL to each process group (gunicorn and its worker).

        Not SIGTERM: a graceful exit (gunicorn's arbiter, then Python's finalization of the
        whole bundle) costs each process a fraction of a CPU second, and tens of them exiting
        together on two busy cores took a minute. Nothing here checks a graceful exit; the
        SIGTERM behaviour is tested on its own (tests/integration/test_chat_long_poll_server.py).
        """
        for inst in self.instances.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.process.pid, signal.SIGKILL)
        for inst in self.instances.values():
            inst.process.wait()
        self.instances.clear()

    def log_lines(self, name: str) -> list[str]:
        return self.instance(name).log_path.read_text().splitlines()

    # ---- the front: load balancer, function URLs, IAM ---------------------------------------

    def grant_invoker(self, name: str, member: str) -> None:
        """Add an invoker binding beyond the plan's (to test the function's own claim check)."""
        self.extra_invokers.setdefault(name, set()).add(member)

    def _iam(self, name: str, request: Request, internal: bool) -> tuple[Response | None, dict[str, str]]:
        """Cloud Run's checks on a private function: (refusal, the credential headers forwarded)."""
        fp = self.by_name[name]
        if name in self.unbound:  # the deploy could not bind an invoker: nobody may call it
            return Response("Forbidden", 403), {}
        credentials = ("Authorization", "X-Serverless-Authorization")
        sent = {key: request.headers[key] for key in credentials if key in request.headers}
        if fp.public:
            return None, sent
        checked = "X-Serverless-Authorization" if "X-Serverless-Authorization" in sent else "Authorization"
        scheme, _, token = sent.get(checked, "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Response("Unauthorized", 401), {}
        try:
            claims = jwt.decode(
                token,
                self.google.private.public_key(),
                algorithms=["RS256"],
                audience=fp.url,
                issuer=GOOGLE_ISSUER,
            )
        except jwt.PyJWTError:
            return Response("Unauthorized", 401), {}
        member = f"serviceAccount:{claims.get('email')}"
        if member not in (*fp.invokers, *self.extra_invokers.get(name, ())):
            return Response("Forbidden", 403), {}
        header, payload, _ = token.split(".")
        return None, {**sent, checked: f"Bearer {header}.{payload}.{REMOVED}"}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        internal = environ.get("standin.internal", False)
        if request.host != self.function_host and not self.network.dns and self.plan.load_balancer:
            raise HostUnreachable(f"{request.host} does not resolve: no DNS A record")
        client_ip = request.remote_addr or "203.0.113.7"
        forwarded = [e.strip() for e in request.headers.get("X-Forwarded-For", "").split(",") if e.strip()]
        if request.host == self.function_host:
            name, _, rest = request.path.lstrip("/").partition("/")
            if name not in self.by_name or name in self.undeployed:
                return Response("Not Found", 404)(environ, start_response)
            if self.plan.config.ingress_settings != "all" and not internal:
                return Response("Not Found", 404)(environ, start_response)
            path = "/" + rest
            chain = [*forwarded, client_ip]
        else:
            name = self.backends[urlmap.route(self.plan.url_map, request.method, request.path)]
            if name in self.undeployed:  # a serverless NEG whose function does not exist
                return Response("Not Found", 404)(environ, start_response)
            path = request.path
            chain = [*forwarded, client_ip, LB_IP]
        refusal, credentials = self._iam(name, request, internal)
        if refusal is not None:
            return refusal(environ, start_response)
        dropped = ("host", "authorization", "x-serverless-authorization")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        headers.update(credentials)
        headers["X-Forwarded-For"] = ", ".join(chain)
        if "X-Cloud-Trace-Context" not in request.headers:
            trace, span = secrets.token_hex(16), secrets.token_hex(8)
            headers["X-Cloud-Trace-Context"] = f"{trace}/{int(span, 16)};o=1"
            headers["traceparent"] = f"00-{trace}-{span}-01"
        query = environ.get("QUERY_STRING")
        return self._forward(name, request.method, path + (f"?{query}" if query else ""), headers, request.get_data())(
            environ, start_response
        )

    def _forward(self, name: str, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        inst = self.instance(name)
        conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=120)
        if self.shared_processes:
            headers = {**headers, STANDIN_FUNCTION: name}
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = Response(data, status=resp.status)
            out.headers.clear()
            for key, value in resp.getheaders():
                if key.lower() not in ("transfer-encoding", "connection"):
                    out.headers.add(key, value)
            return out
        finally:
            conn.close()

    # ---- clients ---------------------------------------------------------------------------

    def load_balancer(self) -> Client:
        """A client of the load balancer's address (its own host, never a function URL)."""
        return Client(self)

    def open(self, method: str, url: str, **kwargs: Any) -> Any:
        """A request to an absolute URL: a function URL, or the load balancer's own host."""
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "https://api.bestie.example"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return Client(self).open(path, base_url=base, method=method, **kwargs)

    def id_token(self, email: str, audience: str, *, lifetime: int = 300) -> str:
        """A Google-signed ID token, as Google's token service would mint it."""
        now = int(time.time())
        claims = {
            "iss": GOOGLE_ISSUER,
            "aud": audience,
            "sub": str(abs(hash(email))),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime,
        }
        return self.google.sign(claims)

    def fire(self, job: scheduler_v1.Job, *, scheduled: datetime | None = None, as_account: str | None = None) -> Any:
        """Cloud Scheduler running one job now: its request as defined, with an OIDC token."""
        target = job.http_target
        oidc = target.oidc_token
        email = as_account or oidc.service_account_email
        token = self.id_token(email, oidc.audience or target.uri)
        stamp = (scheduled or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            **dict(target.headers),
            "Authorization": f"Bearer {token}",
            "User-Agent": "Google-Cloud-Scheduler",
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": job.name.rsplit("/", 1)[-1],
            "X-CloudScheduler-ScheduleTime": stamp,
        }
        return self.open(
            scheduler_v1.HttpMethod(target.http_method).name,
            target.uri,
            headers=headers,
            data=bytes(target.body),
            environ_base={"standin.internal": True, "REMOTE_ADDR": "107.178.0.1"},
        )


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as a JSON object (raises on the first that is not)."""
    return [json.loads(line) for line in lines if line.strip()]


def test_secret_values(database_url: str, valkey_url: str) -> dict[str, str]:
    """A value for every secret the deploy could mount (each one non-empty)."""
    return {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "AUTH_JWT_SECRET": "platform-new-secret-" + "n" * 40,
        "AUTH_JWT_PREVIOUS_SECRETS": "platform-old-secret-" + "o" * 40,
        "OTP_HMAC_SECRET": "platform-otp-secret-" + "h" * 32,
        "FAZPASS_MERCHANT_KEY": "merchant-key",
        "FAZPASS_GATEWAY_KEY": "gateway-key",
        "DB_PASSWORD": "unused",
        "VALKEY_CA_CERT": "unused",
        "ADMIN_PASSWORD": "unused",
        "APPLE_PRIVATE_KEY": _apple_key_pem(),
        "APPLE_TOKEN_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    }


def _apple_key_pem() -> str:
    """A P-256 key in PEM, the shape of a Sign in with Apple key (.p8)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
