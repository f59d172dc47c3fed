"""Type-checked (mypy --strict) against the client openapi-python-client generates from openapi.yaml.

What an app or a script writes with the generated client must type-check: the generated
operations are named after the manifest's functions and grouped by audience, the error body is
typed, `TokenPair.user` is one of three profiles.
"""

from __future__ import annotations

from uuid import UUID

from bestie_client import AuthenticatedClient
from bestie_client.api.mitra import pairing_mitra_accept
from bestie_client.api.shared import auth_refresh
from bestie_client.models import (
    AuthRefreshBody,
    CcUser,
    ChatMessage,
    ChatSession,
    Customer,
    EndReason,
    ErrorCode,
    ErrorResponse,
    MitraUser,
    RefreshedTokenPair,
    SessionStatus,
    TokenPair,
)
from bestie_client.types import UNSET, Unset


def shown_name(pair: TokenPair) -> str:
    user: Customer | MitraUser | CcUser = pair.user
    if isinstance(user, Customer):
        return user.display_name or ("phone" if user.linked.phone else "anonymous")
    if isinstance(user, MitraUser):
        return user.display_name
    return user.email


def accept(client: AuthenticatedClient, session_id: UUID) -> SessionStatus | ErrorCode | None:
    answer = pairing_mitra_accept.sync(id=session_id, client=client)
    if isinstance(answer, ChatSession):
        return answer.status
    if isinstance(answer, ErrorResponse):
        if answer.error.code is ErrorCode.AT_CAPACITY and answer.error.used is not UNSET:
            return ErrorCode.AT_CAPACITY
        current = answer.error.current_status
        return current if isinstance(current, SessionStatus) else answer.error.code
    return None


def refresh(client: AuthenticatedClient, token: str) -> str | None:
    answer = auth_refresh.sync(client=client, body=AuthRefreshBody(refresh_token=token))
    if isinstance(answer, RefreshedTokenPair):
        return answer.refresh_token
    return None


def end_reason(message: ChatMessage) -> EndReason | None:
    detail = message.detail
    if detail is None or isinstance(detail, Unset):
        return None
    reason = detail.end_reason
    return reason if isinstance(reason, EndReason) else None
