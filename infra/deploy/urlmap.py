"""One HTTPS load balancer in front of the public functions: serverless NEGs and a URL map.

Each public function gets a serverless network endpoint group and a backend service; the
URL map routes (method, path) to them with route rules built from the manifest: the route
becomes a `pathTemplateMatch` (`:id` becomes `*`, one path segment) and the method a
`:method` header match, because several functions share a path (GET and POST
/internal/mitras). Rules with fewer parameters come first, so a literal segment wins over a
parameter (`/me/password` before `/*/password`), as in the local gateway. After the method
rules, one rule per path without a method match sends a wrong method to a function of that
path, which answers the JSON 405 with `Allow`. Anything else goes to the default service
(the health function), whose right-aligned route match answers a JSON 404.

Sweeps are not behind the load balancer: Cloud Scheduler calls their function URLs with an
OIDC token. The functions match routes right-aligned, so the same code serves the full path
through the load balancer and the bare function URL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared import manifest


def path_template(fn: manifest.Function) -> str:
    """The manifest route as a URL-map path template (`:id` -> `*`)."""
    return "/" + "/".join("*" if s.startswith(":") else s for s in fn.segments)


def neg_name(prefix: str, fn: manifest.Function) -> str:
    return f"{prefix}-{fn.name}-neg"[:63]


def backend_name(prefix: str, fn: manifest.Function) -> str:
    return f"{prefix}-{fn.name}"[:63]


def _order(fn: manifest.Function) -> tuple[int, str, str]:
    return (sum(s.startswith(":") for s in fn.segments), fn.route, fn.method)


def url_map(functions: Sequence[manifest.Function], project: str, prefix: str) -> dict[str, Any]:
    """The URL map (as `gcloud compute url-maps import` reads it) for the public functions."""
    if not functions:
        raise ValueError("no public functions to put behind the load balancer")
    ordered = sorted(functions, key=_order)

    def service(fn: manifest.Function) -> str:
        return f"projects/{project}/global/backendServices/{backend_name(prefix, fn)}"

    default = next((fn for fn in ordered if fn.name == "healthz"), ordered[0])
    rules: list[dict[str, Any]] = []
    for fn in ordered:
        rules.append(
            {
                "priority": len(rules) + 1,
                "description": f"{fn.method} {fn.route}",
                "matchRules": [
                    {
                        "pathTemplateMatch": path_template(fn),
                        "headerMatches": [{"headerName": ":method", "exactMatch": fn.method}],
                    }
                ],
                "service": service(fn),
            }
        )
    first_of_path: dict[str, manifest.Function] = {}
    for fn in ordered:
        first_of_path.setdefault(path_template(fn), fn)
    for template, fn in first_of_path.items():
        rules.append(
            {
                "priority": len(rules) + 1,
                "description": f"other methods on {fn.route} (JSON 405)",
                "matchRules": [{"pathTemplateMatch": template}],
                "service": service(fn),
            }
        )
    return {
        "name": f"{prefix}-urlmap",
        "defaultService": service(default),
        "hostRules": [{"hosts": ["*"], "pathMatcher": "routes"}],
        "pathMatchers": [{"name": "routes", "defaultService": service(default), "routeRules": rules}],
    }


def backend_commands(functions: Sequence[manifest.Function], project: str, region: str, prefix: str) -> list[list[str]]:
    """gcloud commands creating each public function's serverless NEG and backend service."""
    out: list[list[str]] = []
    for fn in functions:
        neg, backend = neg_name(prefix, fn), backend_name(prefix, fn)
        scope = [f"--project={project}"]
        out.append(
            [
                *("gcloud", "compute", "network-endpoint-groups", "create", neg),
                f"--region={region}",
                "--network-endpoint-type=serverless",
                f"--cloud-function-name={fn.name}",
                *scope,
            ]
        )
        out.append(
            [
                *("gcloud", "compute", "backend-services", "create", backend, "--global"),
                "--load-balancing-scheme=EXTERNAL_MANAGED",
                *scope,
            ]
        )
        out.append(
            [
                *("gcloud", "compute", "backend-services", "add-backend", backend, "--global"),
                f"--network-endpoint-group={neg}",
                f"--network-endpoint-group-region={region}",
                *scope,
            ]
        )
    return out


def import_command(project: str, prefix: str, source: str) -> list[str]:
    """The command that creates or replaces the URL map from its file."""
    return [
        *("gcloud", "compute", "url-maps", "import", f"{prefix}-urlmap"),
        f"--source={source}",
        "--global",
        f"--project={project}",
        "--quiet",
    ]


def to_text(url_map: dict[str, Any]) -> str:
    """The URL map as JSON (which `url-maps import` reads as YAML), one route rule per line."""
    rules = [
        json.dumps(rule, separators=(", ", ": "))
        for matcher in url_map["pathMatchers"]
        for rule in matcher["routeRules"]
    ]
    skeleton = json.loads(json.dumps(url_map))
    for matcher in skeleton["pathMatchers"]:
        matcher["routeRules"] = ["@RULES@"]
    text = json.dumps(skeleton, indent=2)
    return text.replace('"@RULES@"', ",\n        ".join(rules))


def _template_matches(template: str, path: str) -> bool:
    """`pathTemplateMatch` with `*` as exactly one path segment (the only operator we emit)."""
    want = [s for s in template.split("/") if s]
    got = [s for s in path.split("/") if s]
    return len(want) == len(got) and all(w == "*" or w == g for w, g in zip(want, got, strict=True))


def route(url_map: dict[str, Any], method: str, path: str) -> str:
    """The backend service the URL map sends (method, path) to, as the load balancer evaluates it.

    Route rules are tried in priority order and the first whose match rule holds wins
    (https://cloud.google.com/load-balancing/docs/url-map-concepts#routing-requests); the
    `:method` pseudo-header is the request's method. Without a match: the default service.
    """
    for matcher in url_map["pathMatchers"]:
        for rule in sorted(matcher["routeRules"], key=lambda r: r["priority"]):
            for match in rule["matchRules"]:
                if not _template_matches(match["pathTemplateMatch"], path.split("?", 1)[0]):
                    continue
                headers = match.get("headerMatches", [])
                if all(h["headerName"] == ":method" and h["exactMatch"] == method for h in headers):
                    return str(rule["service"])
        return str(matcher["defaultService"])
    return str(url_map["defaultService"])


def backends(functions: Sequence[manifest.Function], project: str, prefix: str) -> dict[str, str]:
    """Backend service path -> function name, for reading the URL map back."""
    return {f"projects/{project}/global/backendServices/{backend_name(prefix, fn)}": fn.name for fn in functions}
