"""Authentication functions: anonymous, OTP, Google/Apple sign-in, refresh, logout, control-center accounts.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

import functions_framework

from shared import config, context, devices, mitras, phones, sms, validate
from shared.accounts import apple_notifications as apple_notifications_service
from shared.accounts import deletion, profiles, sessions
from shared.auth import (
    apple_accounts,
    cc_users,
    cookies,
    customers,
    guard,
    identity,
    mitra_auth,
    nonces,
    otp,
    refresh,
)
from shared.auth.principal import Principal
from shared.cc import staff
from shared.errors import NotFound, Unauthorized
from shared.http import ApiRequest, Reply, endpoint

context.init(required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))


# ---- shared (customer and mitra apps) -------------------------------------------------------


@functions_framework.http
@endpoint("POST /api/shared/auth/anonymous", auth="none")
def auth_anonymous(req: ApiRequest) -> Reply:
    return Reply(customers.sign_in_anonymous(req.ctx, req.ip, req.user_agent), 201)


@functions_framework.http
@endpoint("POST /api/shared/auth/refresh", auth="none")
def auth_refresh(req: ApiRequest) -> dict:
    token = validate.string(req.json(), "refresh_token", max_len=128) or ""
    issued = customers.rotate_refresh(req.ctx, token)
    return issued.body(customers.app_user(issued))


@functions_framework.http
@endpoint("POST /api/shared/auth/logout", auth="none")
def auth_logout(req: ApiRequest) -> Reply:
    # The refresh token alone is enough: an expired access token must not block a logout.
    body = req.json()
    token = validate.string(body, "refresh_token", required=False, max_len=128)
    fcm_token = validate.string(body, "fcm_token", required=False, max_len=devices.MAX_TOKEN_CHARS)
    if token is not None:
        caller = sessions.caller_of_refresh_token(req.ctx, token)
    else:
        caller = guard.verify(req.ctx, guard.bearer_token(req), "any")
    sessions.logout(req.ctx, caller, fcm_token)
    return Reply(None, 204)


@functions_framework.http
@endpoint("POST /api/shared/auth/logout-all", auth="any")
def auth_logout_all(req: ApiRequest) -> dict:
    return sessions.logout_all(req.ctx, req.principal)


@functions_framework.http
@endpoint("GET /api/shared/auth/sessions", auth="any")
def auth_sessions(req: ApiRequest) -> dict:
    return sessions.list_sessions(req.ctx, req.principal)


@functions_framework.http
@endpoint("POST /api/shared/auth/nonce", auth="none")
def auth_nonce(req: ApiRequest) -> Reply:
    bearer = guard.optional(req.ctx, req, "customer")
    return Reply(nonces.issue(req.ctx, _nonce_binding(req, bearer)), 201)


def _nonce_binding(req: ApiRequest, bearer: Principal | None) -> str:
    return nonces.binding(req.ip, bearer.session_id if bearer else None)


# ---- customers ---------------------------------------------------------------------------------


def _phone(req: ApiRequest) -> str:
    return phones.normalize(validate.string(req.json(), "phone", max_len=32) or "")


def _otp_answer(req: ApiRequest) -> tuple[str, str]:
    body = req.json()
    request_id = validate.uuid_value(validate.string(body, "request_id", max_len=64), "request_id")
    return request_id, otp.parse_code(validate.string(body, "code", max_len=12) or "")


@functions_framework.http
@endpoint("POST /api/client/auth/otp/request", auth="none")
def auth_client_otp_request(req: ApiRequest) -> Reply:
    return Reply(otp.request_code(req.ctx, "customer", _phone(req), req.ip), 201)


@functions_framework.http
@endpoint("POST /api/client/auth/otp/verify", auth="none")
def auth_client_otp_verify(req: ApiRequest) -> dict:
    request_id, code = _otp_answer(req)
    bearer = guard.optional(req.ctx, req, "customer")
    return customers.sign_in_with_phone(req.ctx, request_id, code, bearer, req.user_agent)


@functions_framework.http
@endpoint("POST /api/client/auth/google", auth="none")
def auth_client_google(req: ApiRequest) -> dict:
    body = req.json()
    token = validate.string(body, "id_token", max_len=8192) or ""
    nonce = validate.string(body, "nonce", required=False, max_len=256)
    identity.count_sign_in(req.ctx, req.ip)
    bearer = guard.optional(req.ctx, req, "customer")
    verified = identity.verify_google(req.ctx, token, nonce)
    if nonce is not None:
        nonces.consume(req.ctx, nonce, _nonce_binding(req, bearer))
    return customers.sign_in_with_identity(req.ctx, verified, bearer, req.user_agent)


@functions_framework.http
@endpoint("POST /api/client/auth/apple", auth="none")
def auth_client_apple(req: ApiRequest) -> dict:
    body = req.json()
    token = validate.string(body, "id_token", max_len=8192) or ""
    nonce = validate.string(body, "nonce", required=False, max_len=256)
    code = validate.string(body, "authorization_code", required=False, max_len=1024)
    name = validate.string(body, "name", required=False, max_len=80)
    identity.count_sign_in(req.ctx, req.ip)
    bearer = guard.optional(req.ctx, req, "customer")
    return apple_accounts.sign_in(
        req.ctx,
        id_token=token,
        raw_nonce=nonce,
        authorization_code=code,
        name=name,
        bearer=bearer,
        binding=_nonce_binding(req, bearer),
        user_agent=req.user_agent,
    )


@functions_framework.http
@endpoint("GET /api/client/auth/me", auth="customer")
def auth_client_me(req: ApiRequest) -> dict:
    return customers.get(req.ctx, req.principal.user_id)


@functions_framework.http
@endpoint("DELETE /api/client/auth/me", auth="customer")
def auth_client_delete(req: ApiRequest) -> Reply:
    deletion.delete_customer(req.ctx, req.principal.user_id)
    return Reply(None, 204)


@functions_framework.http
@endpoint("PATCH /api/client/auth/profile", auth="customer")
def auth_client_profile(req: ApiRequest) -> dict:
    name = validate.string(req.json(), "display_name", max_len=80) or ""
    return customers.update_profile(req.ctx, req.principal.user_id, name)


@functions_framework.http
@endpoint("PUT /api/client/auth/phone", auth="customer")
def auth_client_phone_change(req: ApiRequest) -> dict:
    request_id, code = _otp_answer(req)
    return customers.change_phone(req.ctx, req.principal.user_id, request_id, code)


@functions_framework.http
@endpoint("POST /api/apple/notifications", auth="none")
def apple_notifications(req: ApiRequest) -> dict:
    payload = validate.string(req.json(), "payload", max_len=16384) or ""
    return apple_notifications_service.handle(req.ctx, payload)


@functions_framework.http
@endpoint("POST /api/apple/callback", auth="none")
def apple_callback(req: ApiRequest) -> Reply:
    location = apple_accounts.android_redirect(req.ctx, req.form())
    return Reply(None, 307, headers={"Location": location})


# ---- mitras ------------------------------------------------------------------------------------


@functions_framework.http
@endpoint("POST /api/mitra/auth/otp/request", auth="none")
def auth_mitra_otp_request(req: ApiRequest) -> Reply:
    return Reply(otp.request_code(req.ctx, "mitra", _phone(req), req.ip), 201)


@functions_framework.http
@endpoint("POST /api/mitra/auth/otp/verify", auth="none")
def auth_mitra_otp_verify(req: ApiRequest) -> dict:
    request_id, code = _otp_answer(req)
    return mitra_auth.sign_in(req.ctx, request_id, code, req.user_agent)


@functions_framework.http
@endpoint("GET /api/mitra/auth/me", auth="mitra")
def auth_mitra_me(req: ApiRequest) -> dict:
    return mitra_auth.me(req.ctx, req.principal.user_id)


@functions_framework.http
@endpoint("PATCH /api/mitra/auth/profile", auth="mitra")
def auth_mitra_profile(req: ApiRequest) -> dict:
    name = validate.string(req.json(), "display_name", max_len=mitras.NAME_MAX) or ""
    return profiles.rename_mitra(req.ctx, req.principal.user_id, name)


# ---- control center ----------------------------------------------------------------------------


@functions_framework.http
@endpoint("POST /internal/auth/login", auth="none")
def auth_cc_login(req: ApiRequest) -> Reply:
    cookies.check_origin(req.ctx, req.header("Origin"))
    body = req.json()
    email = cc_users.normalize_email(validate.string(body, "email", max_len=254) or "")
    password = validate.string(body, "password", strip=False, max_len=1024) or ""
    issued, user = cc_users.login(req.ctx, email, password, req.user_agent, req.ip)
    return Reply(issued.body(user, include_refresh=False), cookies=[cookies.refresh_cookie(req.ctx, issued)])


@functions_framework.http
@endpoint("POST /internal/auth/refresh", auth="none")
def auth_cc_refresh(req: ApiRequest) -> Reply:
    cookies.check_origin(req.ctx, req.header("Origin"))
    token = req.cookie(cookies.NAME)
    if not token:
        raise Unauthorized("no refresh cookie", code="REFRESH_TOKEN_INVALID")
    issued, user = cc_users.refresh_session(req.ctx, token)
    return Reply(issued.body(user, include_refresh=False), cookies=[cookies.refresh_cookie(req.ctx, issued)])


@functions_framework.http
@endpoint("POST /internal/auth/logout", auth="none")
def auth_cc_logout(req: ApiRequest) -> Reply:
    cookies.check_origin(req.ctx, req.header("Origin"))
    token = req.cookie(cookies.NAME)
    if token:
        refresh.revoke_by_refresh_token(req.ctx, token)
    return Reply(None, 204, cookies=[cookies.cleared_cookie()])


@functions_framework.http
@endpoint("GET /internal/auth/me", auth="cc")
def auth_cc_me(req: ApiRequest) -> dict:
    return cc_users.get(req.ctx, req.principal.user_id)


@functions_framework.http
@endpoint("POST /internal/control-center-users", auth="cc_admin")
def cc_users_create(req: ApiRequest) -> Reply:
    body = req.json()
    email = cc_users.normalize_email(validate.string(body, "email", max_len=254) or "")
    password = validate.string(body, "password", strip=False, max_len=1024) or ""
    role = validate.choice(body, "role", cc_users.ROLES, required=False, default="operator") or "operator"
    user = cc_users.create_user(req.ctx, email, password, role, actor=f"cc:{req.principal.user_id}")
    return Reply(user, 201)


@functions_framework.http
@endpoint("GET /internal/control-center-users", auth="cc_admin")
def cc_users_list(req: ApiRequest) -> dict:
    return {"users": staff.list_users(req.ctx)}


@functions_framework.http
@endpoint("PATCH /internal/control-center-users/me/password", auth="cc")
def cc_users_change_own_password(req: ApiRequest) -> dict:
    body = req.json()
    current = validate.string(body, "current_password", strip=False, max_len=1024) or ""
    new = validate.string(body, "new_password", strip=False, max_len=1024) or ""
    revoked = cc_users.change_own_password(req.ctx, req.principal, current, new)
    return {"ok": True, "revoked_sessions": revoked}


@functions_framework.http
@endpoint("PATCH /internal/control-center-users/:id/password", auth="cc_admin")
def cc_users_reset_password(req: ApiRequest) -> dict:
    user_id = req.uuid_param()
    new = validate.string(req.json(), "new_password", strip=False, max_len=1024) or ""
    revoked = cc_users.reset_password(req.ctx, req.principal, user_id, new)
    return {"ok": True, "revoked_sessions": revoked}


# ---- development only --------------------------------------------------------------------------


@functions_framework.http
@endpoint("GET /internal/_test/last-otp", auth="none")
def test_last_otp(req: ApiRequest) -> dict:
    phone = phones.normalize(req.query("phone") or "")
    code = sms.last_code(req.ctx, phone)
    if code is None:
        raise NotFound("no code was sent to this phone", code="OTP_NOT_FOUND")
    return {"phone": phone, "code": code}
