"""Reading uploads: the body counted while it arrives, and a client that hangs up mid-body.

`limited_receive` cuts a body off at the server's byte limit (`BodyTooLarge`, answered with 413);
`client_gone` answers starlette's `ClientDisconnect` (raised by the upload reader when the client closes
the connection before the body is complete): nobody is left to read an answer, so it logs one line at
INFO level at most, never a traceback, whichever route was reading.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

__all__ = ["BodyTooLarge", "ClientDisconnect", "client_gone", "human_bytes", "limited_receive"]

LOG = logging.getLogger("latentpaint.server")


class BodyTooLarge(Exception):
    """Raised from inside the body stream once more bytes arrived than allowed."""


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as the --max-upload-mb flag)."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def limited_receive(receive: Callable[[], Awaitable[dict]], limit: int) -> Callable[[], Awaitable[dict]]:
    """Wraps an ASGI `receive` so the body stream stops with `BodyTooLarge` after `limit` bytes."""
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return wrapped


async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The exception handler for `ClientDisconnect`: one INFO line, and a 400 that nobody will read."""
    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    LOG.info("%s hung up during the upload to %s", client, request.url.path)
    return Response(status_code=400)
