"""Client IP behind the load balancer: two trusted hops, and function URLs closed by ingress."""

from __future__ import annotations

import redis

from shared.keys import Keys
from tests.platform.standin import Platform, json_lines

CLIENT, SPOOFED = "198.51.100.23", "1.2.3.4"


def test_behind_the_load_balancer_the_function_sees_the_client_not_a_forged_header(
    platform: Platform, platform_plan, test_env
):
    resp = platform.open(
        "POST",
        "https://api.bestie.example/api/shared/auth/anonymous",
        headers={"X-Forwarded-For": SPOOFED},
        environ_base={"REMOTE_ADDR": CLIENT},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    keys = Keys(platform_plan.config.env["VALKEY_PREFIX"])
    client = redis.Redis.from_url(test_env["VALKEY_URL"])
    try:
        assert client.exists(keys.rate("anon_ip", CLIENT)) == 1
        assert client.exists(keys.rate("anon_ip", SPOOFED)) == 0
    finally:
        client.close()
    access = [e for e in json_lines(platform.log_lines("auth-anonymous")) if "httpRequest" in e]
    assert access[-1]["httpRequest"]["remoteIp"] == CLIENT  # the access log names the client, not the proxy


def test_with_internal_and_gclb_ingress_a_function_url_does_not_answer_the_internet(platform: Platform, platform_plan):
    fp = platform_plan.function("auth-anonymous")
    assert platform_plan.config.ingress_settings == "internal-and-gclb"
    resp = platform.open("POST", fp.url + fp.fn.route, headers={"X-Forwarded-For": SPOOFED})
    assert resp.status_code == 404
