"""Payment gateway functions: Midtrans's HTTP notification (public, signature-checked).

Thin entry point only: it parses, calls shared.payments.service, and returns. The answer is
2xx only once the change is committed; any failure is non-2xx, so Midtrans retries it
(https://docs.midtrans.com/docs/https-notification-webhooks).
"""

import functions_framework

from shared import config, context, validate
from shared.http import ApiRequest, endpoint
from shared.payments import service as payments

context.init(required=(config.DATABASE, config.VALKEY))


@functions_framework.http
@endpoint
def payments_midtrans_notification(req: ApiRequest) -> dict:
    body = req.json()
    for name in ("order_id", "status_code", "gross_amount", "signature_key"):
        validate.string(body, name, max_len=256)
    return payments.handle_notification(req.ctx, body)
