"""The bare async function long polls are measured against: it holds the request for `wait`
seconds on the event loop and answers an empty message list, with none of the project's edge,
token check, Postgres read or wake-up around it."""

import asyncio

from functions_framework import aio
from starlette.requests import Request


@aio.http
async def bare_wait(request: Request) -> dict:
    await asyncio.sleep(float(request.query_params.get("wait", "0")))
    return {"messages": [], "next_after": 0}
