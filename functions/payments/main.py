"""Payment functions: Midtrans's HTTP notification (public, signature-checked), and the staff
view of a session's payments and refunds due, with the route that marks a refund paid back.

Thin entry point only: it parses, calls shared.payments.service, and returns. The answer is
2xx only once the change is committed; any failure is non-2xx, so Midtrans retries it
(https://docs.midtrans.com/docs/https-notification-webhooks).
"""

import functions_framework

from shared import audit, config, context, validate
from shared.http import ApiRequest, endpoint
from shared.payments import service as payments

context.init(required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))


@functions_framework.http
@endpoint("POST /api/payments/midtrans/notification", auth="none")
def payments_midtrans_notification(req: ApiRequest) -> dict:
    body = req.json()
    for name in ("order_id", "status_code", "gross_amount", "signature_key"):
        validate.string(body, name, max_len=256)
    return payments.handle_notification(req.ctx, body)


@functions_framework.http
@endpoint("GET /internal/chat-sessions/:id/payments", auth="cc")
def payments_of_session(req: ApiRequest) -> dict:
    return payments.money_of(req.ctx, req.uuid_param())


@functions_framework.http
@endpoint("POST /internal/chat-sessions/:id/refunded", auth="cc")
def payments_refunded(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    body = req.json()
    refund_id = validate.uuid_value(validate.string(body, "refund_id", max_len=64), "refund_id")
    note = validate.string(body, "reason", required=False, max_len=500)
    actor = f"cc:{req.principal.user_id}"
    money = payments.mark_refunded(req.ctx, actor, session_id, refund_id)
    audit.record_now(
        req.ctx, actor, "refund.mark_refunded", "chat_session", session_id, {"refund_id": refund_id, "reason": note}
    )
    return money
