"""A loopback Midtrans stand-in, built from Midtrans's public documentation.

It serves what shared/payments/midtrans.py calls, over real HTTP on 127.0.0.1:
- Snap create, POST /snap/v1/transactions (Basic auth: server key, empty password) -> 201
  {token, redirect_url}; a reused order_id is refused
  (https://docs.midtrans.com/reference/backend-integration,
  https://docs.midtrans.com/reference/json-objects);
- the status API, GET /v2/{order_id}/status -> the order's status_code, transaction_status,
  fraud_status, gross_amount ("30000.00") and signature_key; an unknown order answers
  status_code "404" (https://docs.midtrans.com/docs/get-status-api-requests,
  https://docs.midtrans.com/reference-link/get-transaction-status);
- cancel, POST /v2/{order_id}/cancel -> status_code "200" and the order `cancel` when it is
  not settled (pending included), "404" for an unknown order, "412" for a settled one
  (https://docs.midtrans.com/reference/cancel-api-1,
  https://docs.midtrans.com/reference-link/cancel-transaction-card); a cancelled order can no
  longer be paid (`pay` refuses it);
- a notifier: `pay`, `fail`, `expire` change an order's status, then POST the HTTP
  notification (JSON, signature_key = SHA512(order_id + status_code + gross_amount + server
  key)) to the merchant's notification URL, retried while the answer is not 2xx
  (https://docs.midtrans.com/docs/https-notification-webhooks,
  https://docs.midtrans.com/reference/best-practices-to-handle-notification). Midtrans spaces
  its retries by minutes; here the intervals are `retry_delays` (short by default).

Used by the tests and by `make dev` (infra/dev.py), where `python -m infra.pay SESSION_ID`
pays the session's waiting payment.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from shared.payments.midtrans import signature

# Development's "pay from the terminal" (infra/pay.py): POST {stand-in}/_standin/pay/<session id>.
PAY_PATH = "/_standin/pay/"

# (url, JSON body) -> HTTP status of the merchant's answer. Default: POST over HTTP.
Deliver = Callable[[str, dict[str, Any]], int]


def _http_deliver(url: str, body: dict[str, Any]) -> int:
    try:
        return requests.post(url, json=body, timeout=15).status_code  # Midtrans waits 15 s
    except requests.RequestException:
        return 0


class MidtransStandIn:
    def __init__(
        self,
        server_key: str,
        notification_url: str = "",
        port: int = 0,
        deliver: Deliver = _http_deliver,
        retry_delays: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2),
    ) -> None:
        self.server_key = server_key
        self.notification_url = notification_url
        self.deliver = deliver
        self.retry_delays = retry_delays
        self.orders: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # every Snap create body, in order
        self.deliveries: list[tuple[str, int]] = []  # (order_id, merchant's answer) per attempt
        self.cancelled: list[str] = []  # order ids cancelled through the API, in order
        self.status_override: dict[str, dict[str, Any]] = {}  # order_id -> fields the status API lies about
        self.down = False  # every API call answers 503 (an outage)
        self._lock = threading.Lock()
        auth = "Basic " + base64.b64encode(f"{server_key}:".encode()).decode()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == auth:
                    return True
                self._reply(401, {"error_messages": ["Access denied due to unauthorized transaction"]})
                return False

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.strip("/").split("/")
                if self.path.startswith(PAY_PATH):  # development only: "the customer pays"
                    self._reply(*standin.pay_session(self.path[len(PAY_PATH) :]))
                elif len(parts) == 3 and parts[0] == "v2" and parts[2] == "cancel":
                    if standin.down:
                        self._reply(503, {"error_messages": ["service unavailable"]})
                    elif self._authorized():
                        self._reply(200, standin.cancel(parts[1]))
                elif self.path != "/snap/v1/transactions":
                    self._reply(404, {"error_messages": ["not found"]})
                elif standin.down:
                    self._reply(503, {"error_messages": ["service unavailable"]})
                elif self._authorized():
                    self._reply(*standin.create(body))

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "v2" or parts[2] != "status":
                    self._reply(404, {"error_messages": ["not found"]})
                elif standin.down:
                    self._reply(503, {"error_messages": ["service unavailable"]})
                elif self._authorized():
                    self._reply(200, standin.status(parts[1]))

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- the HTTP API --------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        details = body.get("transaction_details") or {}
        order_id, amount = details.get("order_id"), details.get("gross_amount")
        if not isinstance(order_id, str) or not 0 < len(order_id) <= 50 or not isinstance(amount, int) or amount < 1:
            return 400, {"error_messages": ["transaction_details is invalid"]}
        with self._lock:
            if order_id in self.orders:
                return 400, {"error_messages": ["transaction_details.order_id has already been taken"]}
            token = str(uuid.uuid4())
            self.orders[order_id] = {"gross_amount": amount, "transaction_status": "pending", "fraud_status": None}
            self.created.append(body)
        return 201, {"token": token, "redirect_url": f"{self.url}/snap/v4/redirection/{token}"}

    def status(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            order = self.orders.get(order_id)
            if order is None:
                return {"status_code": "404", "status_message": "Transaction doesn't exist."}
            return {**self._notification(order_id, order), **self.status_override.get(order_id, {})}

    def cancel(self, order_id: str) -> dict[str, Any]:
        """Void an order not yet settled; Midtrans answers in the body's status_code."""
        with self._lock:
            order = self.orders.get(order_id)
            if order is None:
                return {"status_code": "404", "status_message": "Transaction doesn't exist."}
            if order["transaction_status"] in ("settlement", "refund"):
                return {"status_code": "412", "status_message": "Merchant cannot modify the status of the transaction"}
            order["transaction_status"], order["fraud_status"] = "cancel", None
            self.cancelled.append(order_id)
            return {
                "status_code": "200",  # the cancel succeeded (its notification then carries "202")
                "status_message": "Success, transaction is canceled",
                "order_id": order_id,
                "transaction_status": "cancel",
                "gross_amount": f"{order['gross_amount']}.00",
            }

    def _notification(self, order_id: str, order: dict[str, Any]) -> dict[str, Any]:
        status = order["transaction_status"]
        code = {"settlement": "200", "capture": "200", "pending": "201"}.get(status, "202")
        gross = f"{order['gross_amount']}.00"
        body = {
            "order_id": order_id,
            "status_code": code,
            "gross_amount": gross,
            "transaction_status": status,
            "signature_key": signature(order_id, code, gross, self.server_key),
            "payment_type": "qris",
            "transaction_time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if order["fraud_status"]:
            body["fraud_status"] = order["fraud_status"]
        return body

    # ---- the notifier --------------------------------------------------------------------

    def set_status(self, order_id: str, transaction_status: str, fraud_status: str | None = None) -> dict[str, Any]:
        """Change an order's status at the "gateway"; the notification it would send (not sent)."""
        with self._lock:
            order = self.orders[order_id]
            order["transaction_status"] = transaction_status
            order["fraud_status"] = fraud_status
            return self._notification(order_id, order)

    def notify(self, body: dict[str, Any]) -> int:
        """POST one notification, retrying while the answer is not 2xx; the last answer."""
        answer = 0
        for delay in (0.0, *self.retry_delays):
            time.sleep(delay)
            answer = self.deliver(self.notification_url, body)
            self.deliveries.append((str(body.get("order_id")), answer))
            if 200 <= answer < 300:
                break
        return answer

    def pay(self, order_id: str) -> int:
        """The customer pays (settlement), and the signed notification is sent; a cancelled order cannot be paid."""
        if self.orders[order_id]["transaction_status"] == "cancel":
            raise ValueError(f"order {order_id} was cancelled: it cannot be paid")
        return self.notify(self.set_status(order_id, "settlement"))

    def pay_session(self, session_id: str) -> tuple[int, dict[str, Any]]:
        """Pay the latest pending order of a session (its own or an extension's); the merchant's answer."""
        with self._lock:
            waiting = [
                order_id
                for order_id, order in self.orders.items()
                if session_id in order_id and order["transaction_status"] == "pending"
            ]
        if not waiting:
            return 404, {"error": f"no pending order of session {session_id}"}
        order_id = waiting[-1]
        return 200, {"order_id": order_id, "merchant_answer": self.pay(order_id)}

    def expire(self, order_id: str) -> int:
        return self.notify(self.set_status(order_id, "expire"))

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MidtransStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MidtransStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
