"""The ceiling: a bare ASGI app that answers every request with the same 500-byte XML body.

It does no routing, parsing, signing or storage, so what it sustains under uvicorn with httptools and uvloop is the
upper bound for any Python server on this machine. Run: python bench/ceiling_app.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

_HEAD = b'<GetInstanceProfileResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetInstanceProfileResult>'
_TAIL = b"</GetInstanceProfileResult></GetInstanceProfileResponse>"
BODY = _HEAD + b"<InstanceProfile>" + b"x" * (500 - len(_HEAD) - len(_TAIL) - 35) + b"</InstanceProfile>" + _TAIL
assert len(BODY) == 500, len(BODY)

_HEADERS = [(b"content-type", b"text/xml"), (b"content-length", str(len(BODY)).encode())]
_START = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
_BODY = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the request body as a real server must, then answer.
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(_START)
    await send(_BODY)


def main() -> None:
    import uvicorn

    port = int(sys.argv[1])
    # No proxy-headers middleware, as roleport runs without it: the ceiling must not do more than the server.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
