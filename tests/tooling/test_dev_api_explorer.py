"""`make dev` serves Swagger UI at /docs over the project's own openapi.yaml (dev only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import Client

from infra import dev, openapi_norm


def _behind(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("418 I'M A TEAPOT", [("Content-Type", "text/plain")])
    return [b"gateway"]


def test_docs_page_and_the_spec_it_loads_are_served() -> None:
    client = Client(dev.api_explorer(_behind))

    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    spec_url = re.search(r'url: "([^"]+)"', html)
    assert spec_url is not None
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        served = client.get(asset)
        assert served.status_code == 200 and len(served.get_data()) > 10_000, asset

    spec = client.get(spec_url.group(1))
    assert spec.status_code == 200
    assert openapi_norm.load_spec(spec.get_data(as_text=True)) == openapi_norm.load_spec(dev.SPEC.read_text())
    assert spec.get_data() == (dev.REPO / "openapi.yaml").read_bytes()


def test_other_paths_still_reach_the_gateway() -> None:
    client = Client(dev.api_explorer(_behind))
    resp = client.get("/api/mitra/status")
    assert resp.status_code == 418 and resp.get_data() == b"gateway"
