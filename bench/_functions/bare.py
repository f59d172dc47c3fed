"""The bare function the heartbeat is measured against: the same JWT check and the same one
Valkey round trip (the heartbeat script), with none of the project's edge around it."""

import json
import os
import time
from pathlib import Path

import flask
import functions_framework
import jwt
import redis

_SECRET = os.environ["AUTH_JWT_SECRET"]
_PREFIX = os.environ.get("VALKEY_PREFIX", "bestie:")
_VALKEY = redis.Redis.from_url(os.environ["VALKEY_URL"], decode_responses=True)
_LUA = Path(os.environ["BESTIE_ROOT"]) / "shared/availability"
# The production script as the mirror loads it: the available rule prepended.
_SCRIPT = _VALKEY.register_script(
    (_LUA / "_available_rule.lua").read_text() + "\n" + (_LUA / "heartbeat.lua").read_text()
)
_K = [
    f"{_PREFIX}{{avail}}:{name}"
    for name in (
        "mitras:online",
        "mitras:deactivated",
        "mitra:used",
        "mitra:max",
        "mitra:heartbeat",
        "mitras:available",
        "mitras:ring",
        "config",
        "lock:seed",
        "seed:dirty",
        "seeded",
    )
]


@functions_framework.http
def bare_heartbeat(request: flask.Request) -> flask.Response:
    token = request.headers.get("Authorization", "").partition(" ")[2]
    claims = jwt.decode(token, _SECRET, algorithms=["HS256"], issuer="bestie")
    keys = [*_K, f"{_PREFIX}{{avail}}:revoked:{claims['sid']}"]
    reply = _SCRIPT(keys=keys, args=[claims["sub"], int(time.time() * 1000)])
    body = {"online": reply[0] == "online", "used": int(reply[1]), "max": int(reply[2]), "last_heartbeat_at": reply[3]}
    return flask.Response(json.dumps(body), mimetype="application/json")
