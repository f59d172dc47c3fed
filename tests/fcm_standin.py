"""A loopback stand-in for the FCM HTTP v1 send endpoint.

Answers like FCM: 200 with a message name, or an error body carrying an FcmError detail.
Tokens starting with `dead-` are UNREGISTERED (404), `bad-` INVALID_ARGUMENT (400).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _error(status: int, grpc_status: str, fcm_code: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": fcm_code,
            "status": grpc_status,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}],
        }
    }


class FcmStandIn:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.paths.append(self.path)
                token = body["message"]["token"]
                if token.startswith("dead-"):
                    status, reply = 404, _error(404, "NOT_FOUND", "UNREGISTERED")
                elif token.startswith("bad-"):
                    status, reply = 400, _error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
                else:
                    status, reply = 200, {"name": f"projects/p/messages/{len(outer.requests)}"}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FcmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def anonymous_credential() -> Any:
    """A firebase-admin credential that sends no Authorization header (loopback only)."""
    import google.auth.credentials
    from firebase_admin import credentials

    class Anonymous(credentials.Base):
        def get_credential(self) -> Any:
            return google.auth.credentials.AnonymousCredentials()

    return Anonymous()
