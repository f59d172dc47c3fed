"""Control-center functions and the health check (thin entry points; logic in shared/).

Mitra, customer and chat-session management and the dashboard admit every control-center
user (auth "cc": admins and operators run the day-to-day roster); changing app_config and
staff accounts needs an admin ("cc_admin"). Every change writes an audit row (shared.audit).
"""

import functions_framework

from shared import app_config, audit, availability, context, health, mitras, paging, pairing, phones, validate
from shared.accounts import mitra_deletion
from shared.cc import audit_log, customer_admin, moderation, sessions, staff
from shared.http import ApiRequest, Reply, endpoint

context.init()

PAGE_MAX = 200


def _actor(req: ApiRequest) -> str:
    return f"cc:{req.principal.user_id}"


def _new_mitra(body: dict) -> tuple[str, str]:
    phone = phones.normalize(validate.string(body, "phone", max_len=32) or "")
    return phone, validate.string(body, "display_name", max_len=mitras.NAME_MAX) or ""


def _uuid_query(req: ApiRequest, name: str) -> str | None:
    raw = req.query(name)
    return validate.uuid_value(raw, name) if raw else None


def _choice_query(req: ApiRequest, name: str, options: tuple[str, ...]) -> str | None:
    raw = req.query(name)
    return validate.choice({name: raw}, name, options) if raw else None


def _query_int(req: ApiRequest, name: str, default: int | None, maximum: int | None = None) -> int | None:
    return req.query_int(name, minimum=1, maximum=maximum, default=default)


@functions_framework.http
@endpoint("GET /healthz", auth="none")
def healthz(req: ApiRequest) -> Reply:
    healthy, report = health.check(req.ctx)
    return Reply(report, 200 if healthy else 503)


@functions_framework.http
@endpoint("POST /internal/_test/seed-mitra", auth="none")
def test_seed_mitra(req: ApiRequest) -> Reply:
    body = req.json()
    phone = phones.normalize(validate.string(body, "phone", max_len=32) or "")
    name = validate.string(body, "display_name", required=False, max_len=mitras.NAME_MAX)
    active = validate.boolean(body, "is_active", required=False, default=True)
    mitra, created = mitras.seed_mitra(req.ctx, phone, name, active is not False)
    if created and not mitra["is_active"]:
        availability.sync_mitras(req.ctx, [mitra["id"]])  # into the mirror's deactivated set
    return Reply(mitra, 201 if created else 200)


@functions_framework.http
@endpoint("POST /internal/mitras", auth="cc")
def mitras_create(req: ApiRequest) -> Reply:
    body = req.json()
    phone, name = _new_mitra(body)
    mitra = availability.create_mitra(req.ctx, phone, name, mitras.parse_max_sessions(body), _actor(req))
    return Reply(mitra, 201)


@functions_framework.http
@endpoint("GET /internal/mitras", auth="cc")
def mitras_list(req: ApiRequest) -> dict:
    return availability.list_mitras(
        req.ctx,
        paging.limit(req.query("limit")),
        req.query("cursor"),
        search=paging.search_text(req.query("search")),
        status=_choice_query(req, "status", mitras.MITRA_STATUSES),
    )


@functions_framework.http
@endpoint("GET /internal/mitras/:id", auth="cc")
def mitras_get(req: ApiRequest) -> dict:
    return availability.mitra_with_live(req.ctx, req.uuid_param())


@functions_framework.http
@endpoint("PATCH /internal/mitras/:id", auth="cc")
def mitras_patch(req: ApiRequest) -> dict:
    mitra_id = req.uuid_param()
    changes = mitras.parse_edit(req.json())
    return availability.edit_mitra(req.ctx, mitra_id, changes, _actor(req))


@functions_framework.http
@endpoint("POST /internal/mitras/:id/deactivate", auth="cc")
def mitras_deactivate(req: ApiRequest) -> dict:
    return moderation.deactivate_mitra(req.ctx, req.uuid_param(), _actor(req))


@functions_framework.http
@endpoint("POST /internal/mitras/:id/activate", auth="cc")
def mitras_activate(req: ApiRequest) -> dict:
    return availability.activate(req.ctx, req.uuid_param(), _actor(req))


@functions_framework.http
@endpoint("GET /internal/mitras/:id/logs", auth="cc")
def mitras_logs(req: ApiRequest) -> dict:
    mitra_id = req.uuid_param()
    limit = _query_int(req, "limit", 50, PAGE_MAX) or 50
    before = _query_int(req, "before", None, maximum=paging.BIGINT_MAX)
    return mitras.logs(req.ctx, mitra_id, limit, before, req.query("cursor"))


@functions_framework.http
@endpoint("GET /internal/dashboard", auth="cc")
def dashboard(req: ApiRequest) -> dict:
    window = paging.time_range(req.query("from"), req.query("to"))
    return availability.dashboard(req.ctx, window.start, window.end)


@functions_framework.http
@endpoint("GET /internal/app-config/:key", auth="cc")
def app_config_get(req: ApiRequest) -> dict:
    return app_config.read(req.ctx, req.params["key"])


@functions_framework.http
@endpoint("GET /internal/app-config", auth="cc")
def app_config_list(req: ApiRequest) -> dict:
    return app_config.list_all(req.ctx)


@functions_framework.http
@endpoint("PUT /internal/app-config/:key", auth="cc_admin")
def app_config_put(req: ApiRequest) -> dict:
    key = app_config.require_key(req.params["key"])
    body = req.json()
    if "value" not in body:
        validate.integer(body, "value")
    return availability.set_app_config(req.ctx, key, body["value"], _actor(req))


@functions_framework.http
@endpoint("POST /internal/chat-sessions/:id/payment-confirmed", auth="cc")
def payment_confirmed(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    reason = validate.string(req.json(), "reason", required=False, max_len=500)  # why staff confirm it
    session = pairing.confirm_payment(req.ctx, req.principal, session_id, reason)
    detail = {"reason": reason, "status": session["status"]}
    audit.record_now(req.ctx, _actor(req), "payment.confirm", "chat_session", session_id, detail)
    return session


# ---- customers ---------------------------------------------------------------------------------


@functions_framework.http
@endpoint("GET /internal/customers", auth="cc")
def customers_list(req: ApiRequest) -> dict:
    search = paging.search_text(req.query("search"))
    where = customer_admin.CustomerFilters(
        blocked=paging.flag(req.query("blocked"), "blocked"),
        anonymous=paging.flag(req.query("anonymous"), "anonymous"),
        created=paging.time_range(req.query("created_from"), req.query("created_to"), ("created_from", "created_to")),
    )
    limit = paging.limit(req.query("limit"))
    return customer_admin.list_customers(req.ctx, limit, req.query("cursor"), search, where)


@functions_framework.http
@endpoint("GET /internal/customers/:id", auth="cc")
def customers_get(req: ApiRequest) -> dict:
    return customer_admin.get_customer(req.ctx, req.uuid_param())


@functions_framework.http
@endpoint("POST /internal/customers/:id/block", auth="cc")
def customers_block(req: ApiRequest) -> dict:
    customer_id = req.uuid_param()
    reason = validate.string(req.json(), "reason", required=False, max_len=customer_admin.REASON_MAX)
    return customer_admin.block(req.ctx, customer_id, _actor(req), reason)


@functions_framework.http
@endpoint("POST /internal/customers/:id/unblock", auth="cc")
def customers_unblock(req: ApiRequest) -> dict:
    return customer_admin.unblock(req.ctx, req.uuid_param(), _actor(req))


# ---- chat sessions -----------------------------------------------------------------------------


@functions_framework.http
@endpoint("GET /internal/chat-sessions", auth="cc")
def chat_sessions_list(req: ApiRequest) -> dict:
    return sessions.list_sessions(
        req.ctx,
        paging.limit(req.query("limit")),
        req.query("cursor"),
        status=_choice_query(req, "status", sessions.STATUSES),
        mitra_id=_uuid_query(req, "mitra_id"),
        customer_id=_uuid_query(req, "customer_id"),
    )


@functions_framework.http
@endpoint("GET /internal/chat-sessions/:id", auth="cc")
def chat_sessions_get(req: ApiRequest) -> dict:
    return sessions.get_session(req.ctx, req.uuid_param())


def _moderation_reason(req: ApiRequest) -> str:
    """Why staff act on a session: required, kept in the session's events and the audit log."""
    return validate.string(req.json(), "reason", max_len=moderation.REASON_MAX) or ""


@functions_framework.http
@endpoint("POST /internal/chat-sessions/:id/end", auth="cc")
def chat_sessions_end(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    return moderation.force_end(req.ctx, session_id, _actor(req), _moderation_reason(req))


@functions_framework.http
@endpoint("POST /internal/chat-sessions/:id/reroute", auth="cc")
def chat_sessions_reroute(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    return pairing.reroute_by_staff(req.ctx, req.principal, session_id, _moderation_reason(req))


@functions_framework.http
@endpoint("GET /internal/chat-sessions/:id/messages", auth="cc_admin")
def chat_sessions_messages(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    limit = paging.limit(req.query("limit"))
    return sessions.transcript(req.ctx, session_id, limit, req.query("cursor"), _actor(req))


@functions_framework.http
@endpoint("GET /internal/audit-log", auth="cc_admin")
def audit_log_list(req: ApiRequest) -> dict:
    where = audit_log.filters(
        actor=req.query("actor"),
        action=req.query("action"),
        target_type=req.query("target_type"),
        target_id=req.query("target_id"),
        window=paging.time_range(req.query("from"), req.query("to")),
    )
    return audit_log.list_entries(req.ctx, paging.limit(req.query("limit")), req.query("cursor"), where)


# ---- staff accounts (admins) -------------------------------------------------------------------


@functions_framework.http
@endpoint("PATCH /internal/control-center-users/:id", auth="cc_admin")
def cc_users_patch(req: ApiRequest) -> dict:
    user_id = req.uuid_param()
    return staff.update_user(req.ctx, req.principal, user_id, staff.parse_patch(req.json()))


@functions_framework.http
@endpoint("POST /internal/control-center-users/:id/unlock", auth="cc_admin")
def cc_users_unlock(req: ApiRequest) -> dict:
    return staff.unlock(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("DELETE /internal/mitras/:id", auth="cc_admin")
def mitras_delete(req: ApiRequest) -> dict:
    return mitra_deletion.delete_mitra(req.ctx, req.uuid_param(), _actor(req))
