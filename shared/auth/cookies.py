"""The control-center refresh cookie and the origin check of the cookie routes.

The refresh token of a staff session never reaches JavaScript: it lives in an httpOnly,
Secure, SameSite=Strict cookie scoped to /internal/auth (login, refresh and logout are the
only routes that receive it). Cookie routes also refuse a request whose Origin header names
a site other than CC_ORIGIN, a second CSRF brake next to SameSite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.auth.refresh import Issued
from shared.context import AppContext
from shared.errors import Forbidden

NAME = "bestie_cc_refresh"
PATH = "/internal/auth"


def refresh_cookie(ctx: AppContext, issued: Issued) -> dict[str, Any]:
    """Set-Cookie options for a session's refresh token (lives as long as the session)."""
    return _cookie(
        issued.refresh_token,
        max(0, int((issued.session_expires_at - ctx.now()).total_seconds())),
        issued.session_expires_at,
    )


def cleared_cookie() -> dict[str, Any]:
    """Set-Cookie options that delete the refresh cookie."""
    return _cookie("", 0, None)


def _cookie(value: str, max_age: int, expires: datetime | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key": NAME,
        "value": value,
        "max_age": max_age,
        "path": PATH,
        "secure": True,
        "httponly": True,
        "samesite": "Strict",
    }
    if expires is not None:
        options["expires"] = expires
    return options


def check_origin(ctx: AppContext, origin: str | None) -> None:
    """403 ORIGIN_NOT_ALLOWED when a browser says the request comes from another site."""
    if origin and origin != ctx.settings.cc_origin:
        raise Forbidden("this origin may not use the control-center session", code="ORIGIN_NOT_ALLOWED")
