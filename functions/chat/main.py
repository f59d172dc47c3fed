"""Chat functions: messages of a session (send, long-poll receive, read marker) and the apps' lists.

Thin entry points only: each parses, calls one service in shared/, and returns. The receive
functions hold a request up to `wait` seconds without a thread, a Postgres or a Valkey
connection: they are coroutines (`functions_framework.aio`, served by uvicorn's worker), so
they are deployed with a high concurrency (infra/functions.toml, docs/chat.md).
"""

import functions_framework
from functions_framework import aio

from shared import chat, config, context, feed, paging, validate
from shared.chat import longpoll
from shared.chat.lists import CUSTOMER_VIEWS, DEFAULT_LIMIT, MAX_LIMIT, MITRA_VIEWS
from shared.chat.service import DEFAULT_LIMIT as DEFAULT_MESSAGES
from shared.chat.service import MAX_LIMIT as MAX_MESSAGES
from shared.chat.service import MAX_WAIT_SECONDS, clean_body
from shared.errors import ValidationFailed
from shared.http import ApiRequest, Reply, endpoint
from shared.http_async import async_endpoint

context.init(required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))

MAX_MESSAGE_ID = 2**63 - 1


def _send(req: ApiRequest) -> Reply:
    session_id = req.uuid_param()
    body = req.json()
    client_message_id = validate.uuid_value(validate.string(body, "client_message_id", max_len=64), "client_message_id")
    message, created = chat.send(req.ctx, req.principal, session_id, client_message_id, clean_body(body.get("body")))
    return Reply(message, 201 if created else 200)


async def _receive(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    after = validate.query_integer(req.query("after"), "after", minimum=0, maximum=MAX_MESSAGE_ID, default=0)
    limit = validate.query_integer(
        req.query("limit"), "limit", minimum=1, maximum=MAX_MESSAGES, default=DEFAULT_MESSAGES
    )
    wait = _wait(req)
    before = validate.query_integer(req.query("before"), "before", minimum=0, maximum=MAX_MESSAGE_ID)
    if before is None:
        return await longpoll.messages(req.ctx, req.principal, session_id, after, limit, wait)
    if req.query("after"):
        raise ValidationFailed("before", "cannot be combined with after")
    if wait:
        raise ValidationFailed("before", "cannot be combined with wait (it pages back; wait with after)")
    return await longpoll.messages_before(req.ctx, req.principal, session_id, before, limit)


def _read(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    up_to = validate.integer(req.json(), "up_to", minimum=0, maximum=MAX_MESSAGE_ID) or 0
    return chat.mark_read(req.ctx, req.principal, session_id, up_to)


def _wait(req: ApiRequest) -> int:
    """The seconds to hold the read: `wait` (0 to 25), at most the deployment's CHAT_MAX_WAIT_SECONDS."""
    wait = validate.query_integer(req.query("wait"), "wait", minimum=0, maximum=MAX_WAIT_SECONDS, default=0) or 0
    return min(wait, req.ctx.settings.chat_max_wait_seconds)


def _page(req: ApiRequest) -> tuple[str | None, int]:
    return req.query("cursor"), paging.limit(req.query("limit"), DEFAULT_LIMIT, MAX_LIMIT)


# ---- customers -------------------------------------------------------------------------------


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/messages", auth="customer")
def chat_client_send(req: ApiRequest) -> Reply:
    return _send(req)


@aio.http
@async_endpoint("GET /api/client/chat-sessions/:id/messages", auth="customer")
async def chat_client_messages(req: ApiRequest) -> dict:
    return await _receive(req)


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/messages/read", auth="customer")
def chat_client_read(req: ApiRequest) -> dict:
    return _read(req)


@functions_framework.http
@endpoint("GET /api/client/chat-sessions", auth="customer")
def chat_client_sessions(req: ApiRequest) -> dict:
    view = validate.choice({"view": req.query("view")}, "view", CUSTOMER_VIEWS, required=False, default="open")
    cursor, limit = _page(req)
    return chat.customer_sessions(req.ctx, req.principal, view or "open", cursor, limit)


# ---- mitras ----------------------------------------------------------------------------------


@functions_framework.http
@endpoint("POST /api/mitra/chat-sessions/:id/messages", auth="mitra")
def chat_mitra_send(req: ApiRequest) -> Reply:
    return _send(req)


@aio.http
@async_endpoint("GET /api/mitra/chat-sessions/:id/messages", auth="mitra")
async def chat_mitra_messages(req: ApiRequest) -> dict:
    return await _receive(req)


@functions_framework.http
@endpoint("POST /api/mitra/chat-sessions/:id/messages/read", auth="mitra")
def chat_mitra_read(req: ApiRequest) -> dict:
    return _read(req)


@aio.http
@async_endpoint("GET /api/mitra/chat-sessions", auth="mitra")
async def chat_mitra_sessions(req: ApiRequest) -> dict:
    view = validate.choice({"view": req.query("view")}, "view", MITRA_VIEWS, required=False, default="current")
    cursor, limit = _page(req)
    wait = _wait(req)
    if wait and (view != "offers" or cursor):
        raise ValidationFailed("wait", "only the first page of view=offers can wait")
    return await longpoll.offers(req.ctx, req.principal, view or "current", cursor, limit, wait)


@functions_framework.http
@endpoint("GET /api/mitra/chat-sessions/:id", auth="mitra")
def chat_mitra_session(req: ApiRequest) -> dict:
    return chat.mitra_session(req.ctx, req.principal, req.uuid_param())


# ---- the event feed (docs/events.md) -----------------------------------------------------------


async def _events(req: ApiRequest) -> dict:
    after = validate.query_integer(req.query("after"), "after", minimum=0, maximum=MAX_MESSAGE_ID)
    limit = validate.query_integer(
        req.query("limit"), "limit", minimum=1, maximum=feed.MAX_LIMIT, default=feed.DEFAULT_LIMIT
    )
    wait = _wait(req)
    return await longpoll.events(req.ctx, req.principal, after, limit or feed.DEFAULT_LIMIT, wait)


@aio.http
@async_endpoint("GET /api/client/events", auth="customer")
async def chat_client_events(req: ApiRequest) -> dict:
    return await _events(req)


@aio.http
@async_endpoint("GET /api/mitra/events", auth="mitra")
async def chat_mitra_events(req: ApiRequest) -> dict:
    return await _events(req)
