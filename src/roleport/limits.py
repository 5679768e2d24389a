"""What one request may cost the server: how large its body may be, and how long it may take to arrive.

Both are enforced before the application reads anything: a body is refused from its Content-Length (or, sent in
chunks, as soon as the chunks pass the limit), and a request whose head or body has not fully arrived within the
timeout has its connection closed, so neither a large upload nor a trickle of bytes can hold memory or descriptors.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from roleport.config import DEFAULT_REQUEST_TIMEOUT_SECONDS

# No AWS page states a size limit for the IAM, STS and EC2 query APIs. The largest legitimate request is an IAM call
# carrying a policy document of the maximum 131,072 characters: policy characters are at most U+00FF (IAM quotas
# page), two bytes in UTF-8 and six once percent-encoded, so 786,432 bytes, plus the other parameters. 1 MiB holds
# that with room to spare, and is the console's own form limit (console/web.py).
MAX_BODY_BYTES = 1 << 20
# A request's line and headers: SigV4's headers with a session token (a few KB) fit many times over; the metadata
# listeners allow 16 KiB (imds/transport.py MAX_HEAD_BYTES), and the console's cookies are small.
MAX_HEAD_BYTES = 64 * 1024


class Refusal(NamedTuple):
    """The answer to a request that is too large: status, headers (lower-case byte names), body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class BodyTooLarge(Exception):
    """Raised from `receive` inside the application once a chunked body passes the limit; BodyLimit answers it."""


class BodyLimit:
    """ASGI wrapper refusing bodies over `limit` bytes with the answer `refusal(scope)` and closing the connection,
    so the rest of the body is never read.

    A declared length is checked before the application runs; the server then delivers no more than it declares, so
    such a request passes through untouched (the common case costs one scan of the headers). A chunked body is
    counted as the application receives it: past the limit `receive` raises, and the refusal replaces whatever the
    application would answer. A chunked body the application answered without reading to its end also closes the
    connection, since the server would otherwise go on reading (and discarding) it to reach the next request."""

    def __init__(self, app: ASGIApp, refusal: Callable[[Scope], Refusal], limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.refusal = refusal
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
        elif not chunked:
            await self.app(scope, receive, send)
        else:
            await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _Reading()

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                state.more = bool(message.get("more_body", False))
                if state.received > self.limit:
                    state.refused = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state.refused:
                return  # the refusal goes out instead (a framework may try to answer the exception with a 500)
            if message["type"] == "http.response.start" and state.more:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            state.started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not state.refused:
                raise
        if state.refused and not state.started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        answer = self.refusal(scope)
        headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
            (b"connection", b"close"),  # the server then closes the connection instead of reading the body
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


class _Reading:
    __slots__ = ("more", "received", "refused", "started")

    def __init__(self) -> None:
        self.received = 0
        self.more = True  # a chunked body has more to come until a message says otherwise
        self.refused = False
        self.started = False


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None without one) and whether the body is chunked."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # uvicorn's parser refuses a malformed length before the application sees it; refuse one anyway.
            declared = int(text) if text.isdigit() else sys.maxsize
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return declared, chunked


def http_protocol(request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a deadline for each request to arrive whole and a bound on its head, for
    `uvicorn.Config(http=...)`.

    uvicorn bounds only the idle time between kept-alive requests (timeout_keep_alive), and even that only after a
    first response: a connection that sends nothing, or half a request, or a body a byte at a time, is held for good.
    Here a deadline runs from the connection's opening, and again from each later request's first byte, until the
    request's last byte; a connection still short of it then is closed (within a quarter of the timeout, at most a
    second, later). Nor does httptools bound a request's head (its parser gathers a header of any length before
    handing it on), so the bytes of a head are counted across reads, and a head that ends past MAX_HEAD_BYTES, or
    has not ended by then, is refused with 431 before it is parsed, and the connection closed."""

    sweep_every = min(1.0, request_timeout / 4)

    # uvicorn's own handlers, called directly: these hooks run for every request, and super() costs more than them.
    base_data_received = HttpToolsProtocol.data_received
    base_message_complete = HttpToolsProtocol.on_message_complete
    # Connections with a request under way and when each must have arrived; one sweep at a time closes the late
    # ones. A timer per request (call_later, then cancel) cost more than the rest of these checks together.
    arriving: dict[HttpToolsProtocol, float] = {}

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        sweeper: ClassVar[asyncio.TimerHandle | None] = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_pending = True  # a request's head is due (none yet, or only part of it)
            self._head_bytes = 0
            self._completed: object = None  # the cycle of the last request whose message was complete

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            arriving.pop(self, None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            pending, cycle = self._head_pending, self.cycle
            if pending:
                if self._head_bytes + len(data) > MAX_HEAD_BYTES and self._head_too_large(data):
                    self.transport.write(_HEAD_TOO_LARGE)
                    self.transport.close()
                    return
                if self not in arriving:
                    self._arm()  # a kept-alive request's first bytes
            base_data_received(self, data)
            if self.cycle is not cycle:  # uvicorn starts a cycle when a head is complete
                # Its message may have ended in this same read; if not, its body is still due, by its deadline (a
                # pipelined request whose head came with the end of the one before has none yet).
                self._head_pending = self._completed is self.cycle
                if not self._head_pending and self not in arriving:
                    self._arm()
            elif pending and not self.transport.is_closing():
                self._head_bytes += len(data)  # a read that left the head unfinished

        def _head_too_large(self, data: bytes) -> bool:
            """Whether the head being read ends past MAX_HEAD_BYTES (or not in this read, which takes it past)."""
            end = data.find(b"\r\n\r\n")
            if self._head_bytes and data.startswith((b"\n", b"\r\n", b"\n\r\n")):
                end = 0  # the blank line may have begun in the previous read
            return end < 0 or self._head_bytes + end > MAX_HEAD_BYTES

        def on_message_complete(self) -> None:
            arriving.pop(self, None)
            self._head_pending, self._head_bytes, self._completed = True, 0, self.cycle
            base_message_complete(self)

        def _arm(self) -> None:
            arriving[self] = self.loop.time() + request_timeout
            if TimedHttpToolsProtocol.sweeper is None:
                TimedHttpToolsProtocol.sweeper = self.loop.call_later(sweep_every, _sweep, self.loop)

    def _sweep(loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for late in [protocol for protocol, deadline in arriving.items() if deadline <= now]:
            del arriving[late]
            if not late.transport.is_closing():
                late.transport.close()
        TimedHttpToolsProtocol.sweeper = loop.call_later(sweep_every, _sweep, loop) if arriving else None

    return TimedHttpToolsProtocol


_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 37\r\nconnection: close\r\n\r\nThe request's headers are too large.\n"
)
