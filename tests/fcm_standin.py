"""A loopback stand-in for the FCM HTTP v1 send endpoint.

Answers like FCM: 200 with a message name, or an error body carrying an FcmError detail.
Tokens starting with `dead-` are UNREGISTERED (404), `bad-` INVALID_ARGUMENT (400).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.context import AppContext
from shared.push import FcmPush
from tests.loopback import StubServer


def _error(status: int, grpc_status: str, fcm_code: str) -> dict[str, Any]:
    detail = {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
    return {"error": {"code": status, "message": fcm_code, "status": grpc_status, "details": [detail]}}


def fcm_answer(path: str, body: bytes) -> tuple[int, Any]:
    """FCM's answer to one send request."""
    token = json.loads(body)["message"]["token"]
    if token.startswith("dead-"):
        return 404, _error(404, "NOT_FOUND", "UNREGISTERED")
    if token.startswith("bad-"):
        return 400, _error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    return 200, {"name": f"projects/p/messages/{abs(hash(token))}"}


class FcmStandIn(StubServer):
    """The stand-in; `requests` / `paths` / `messages` record what firebase-admin sent."""

    def __init__(self) -> None:
        super().__init__(responder=fcm_answer)

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


def anonymous_credential() -> Any:
    """A firebase-admin credential that sends no Authorization header (loopback only)."""
    import google.auth.credentials
    from firebase_admin import credentials

    class Anonymous(credentials.Base):
        def get_credential(self) -> Any:
            return google.auth.credentials.AnonymousCredentials()

    return Anonymous()


@contextmanager
def fcm_installed(ctx: AppContext) -> Iterator[FcmStandIn]:
    """An FCM stand-in, and `ctx` sending its pushes there through the real firebase-admin code."""
    with FcmStandIn() as standin:
        settings = dataclasses.replace(ctx.settings, push_provider="fcm", fcm_project_id="bestie-test")
        ctx.singleton("push", lambda: FcmPush(settings, endpoint=standin.url, credential=anonymous_credential()))
        yield standin
