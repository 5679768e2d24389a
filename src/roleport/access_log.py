"""`roleport serve --access-log`: one line per request, with what an AWS user looks for in it.

uvicorn's own access log knows neither the AWS action (it is in the form body) nor the request id (it is in the
answer), so this wraps the application and reads both as they pass. It costs nothing when the flag is off: the
application is then not wrapped at all.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from urllib.parse import parse_qs, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER = logging.getLogger("roleport.access")
# Enough of a form body to find its Action; the parameters after it are not logged.
_BODY_KEPT = 64 * 1024
_SERVICE = re.compile(rb"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def configure() -> None:
    """Lines go to standard error, one per request, whatever uvicorn's log level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def wrap(app: ASGIApp) -> ASGIApp:
    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        body = bytearray()
        answer: dict[str, object] = {"status": 0, "request_id": "-"}

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _BODY_KEPT:
                body.extend(message.get("body", b"")[: _BODY_KEPT - len(body)])
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() in (b"x-amzn-requestid", b"x-amz-request-id"):
                        answer["request_id"] = value.decode("latin-1")
            await send(message)

        try:
            await app(scope, reading, sending)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            LOGGER.info(
                "%s %s %s %s %s %.1fms %s",
                _peer(scope),
                _field(scope["method"]),
                _field(scope["path"]),
                _field(_action(scope, bytes(body))),
                answer["status"] or "-",
                elapsed_ms,
                answer["request_id"],
            )

    return logged


def _field(text: str) -> str:
    """Percent-encoded where it holds anything but printable non-space ASCII, so a request can neither split a line
    nor forge one (an unsigned `?Action=…%0A…` must not read as another request's line)."""
    return text if text.isascii() and text.isprintable() and " " not in text else quote(text, safe="/:")


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _action(scope: Scope, body: bytes) -> str:
    """`service:Action` for AWS calls (the service from the signature's scope, as the server routes it), else `-`."""
    if scope["path"] != "/":
        return "-"
    form = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "Action" not in form and body:
        form = parse_qs(body.decode("latin-1", "replace"))
    action = form.get("Action", ["-"])[0]
    service = "-"
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            found = _SERVICE.search(value)
            service = found.group(1).decode("latin-1") if found else "-"
    if service == "-":
        credential = form.get("X-Amz-Credential", [""])[0].split("/")
        service = credential[3] if len(credential) > 3 else "-"
    return f"{service}:{action}"
