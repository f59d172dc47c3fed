"""Sign in with Apple around the customer account: the sign-in with its code exchange, keeping
Apple's refresh token (shared.auth.apple_tokens) in the transaction that signs the customer in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from shared.auth import apple, apple_tokens, customers, identity, nonces
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Tx
from shared.errors import ServiceUnavailable, ValidationFailed


def sign_in(
    ctx: AppContext,
    *,
    id_token: str,
    raw_nonce: str | None,
    authorization_code: str | None,
    name: str | None,
    bearer: Principal | None,
    binding: str,
    user_agent: str | None,
) -> dict[str, Any]:
    """Verify the token and its nonce, exchange the code, then sign in or link, keeping Apple's token.

    400 without `authorization_code`; see identity.verify_apple, nonces.consume and
    apple.exchange_code for the other answers.

    The exchange runs before the transaction (no lock is held across a call to Apple).
    """
    apple.require_configured(ctx)
    verified = identity.verify_apple(ctx, id_token, raw_nonce)
    if not authorization_code:  # checked after the token, so a garbage request is a 401 like any other
        raise ValidationFailed("authorization_code", "is required")
    nonces.consume(ctx, raw_nonce, binding)
    grant = apple.exchange_code(ctx, authorization_code, verified.audience or "", verified.subject)
    sealed = apple.seal(ctx, grant.client_id, grant.refresh_token)

    def keep(tx: Tx, customer_id: str) -> None:
        apple_tokens.keep(tx, customer_id, grant.client_id, sealed)

    return customers.sign_in_with_identity(ctx, verified, bearer, user_agent, keep=keep, name=name)


# The fields Apple form-posts to the redirect URI (response_mode=form_post), passed on to the app.
CALLBACK_FIELDS = ("code", "id_token", "state", "user", "error")
CALLBACK_MAX_FIELD = 8192


def android_redirect(ctx: AppContext, form: Mapping[str, str]) -> str:
    """The intent URL that hands Apple's form post back to the Android app.

    As the Flutter sign_in_with_apple package documents it
    (https://pub.dev/packages/sign_in_with_apple, "Android"): the redirect URI's server answers
    Apple's POST with a redirect to `intent://callback?<the posted fields>#Intent;package=<the
    app's package>;scheme=signinwithapple;end`. Every value is percent-encoded, so none can end
    the query and name another package. 503 without APPLE_ANDROID_PACKAGE; 400 without a code
    or an error, or with a field longer than 8 KiB.
    """
    package = ctx.settings.apple_android_package
    if not package:
        raise ServiceUnavailable("the Apple Android callback is not configured", code="PROVIDER_NOT_CONFIGURED")
    fields = {name: form[name] for name in CALLBACK_FIELDS if form.get(name)}
    if "code" not in fields and "error" not in fields:
        raise ValidationFailed("code", "is required")
    for name, value in fields.items():
        if len(value) > CALLBACK_MAX_FIELD:
            raise ValidationFailed(name, f"must be at most {CALLBACK_MAX_FIELD} characters")
    return f"intent://callback?{urlencode(fields)}#Intent;package={package};scheme=signinwithapple;end"
