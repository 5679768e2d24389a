"""How metadata requests reach imds/service.py: the path form on the main port (`/imds/{instance_id}/...`, plain
ASGI), and one dedicated listener per instance on a port of its own (asyncio + h11), for clients that keep only host
and port of AWS_EC2_METADATA_SERVICE_ENDPOINT. service.py's docstring explains the addressing."""

from __future__ import annotations

import asyncio
import functools
import http
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import unquote

import h11
from starlette.types import Receive, Scope, Send

from roleport import limits
from roleport.config import DEFAULT_REQUEST_TIMEOUT_SECONDS, is_loopback
from roleport.imds.replies import Reply, error

log = logging.getLogger("roleport.imds")

# (instance id, method, path, headers with lower-case names) → the answer, or None: close without answering.
Respond = Callable[[str, str, str, Mapping[str, str]], Awaitable[Reply | None]]

PATH_PREFIX = "/imds/"
KEEP_ALIVE_SECONDS = 5.0  # an idle connection is closed after this long, as uvicorn does
MAX_HEAD_BYTES = 16 * 1024
SERVER_HEADER = "EC2ws"  # the Server header EC2's metadata service sends


def _headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def _response_headers(reply: Reply) -> list[tuple[str, str]]:
    return [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body))), *reply.headers]


class PathEndpoint:
    """`/imds/{instance_id}/latest/...` on the main port. An unknown or unreachable instance answers 404: the main
    port cannot pretend not to be there. Only callers the metadata listeners would admit are served (loopback peers,
    unless `--metadata-host` is wider), so `--host 0.0.0.0` puts the API on the network but not the instances'
    credentials; others get IMDS's 403."""

    def __init__(self, respond: Respond, metadata_host: str) -> None:
        self.respond = respond
        self.open_to_all = not is_loopback(metadata_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:  # IMDS reads no request body; drain it so the connection stays usable
            message = await receive()
            more = message.get("more_body", False)
        client = scope.get("client")
        if not (self.open_to_all or (client is not None and is_loopback(client[0]))):
            await _answer(send, error(403))
            return
        raw = scope.get("raw_path") or scope["path"].encode("latin-1")
        instance_id, _, rest = raw.decode("latin-1").split("?", 1)[0][len(PATH_PREFIX) :].partition("/")
        headers = _headers(scope["headers"])
        reply = await self.respond(unquote(instance_id), scope["method"], "/" + unquote(rest), headers)
        await _answer(send, reply or error(404))


async def _answer(send: Send, reply: Reply) -> None:
    pairs = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in _response_headers(reply)]
    await send({"type": "http.response.start", "status": reply.status, "headers": pairs})
    await send({"type": "http.response.body", "body": reply.body})


class Listeners:
    """The dedicated listeners: opened on first request for an instance, closed once it is terminated (retire) and
    when the server stops. Each binds `host` (Settings.metadata_host), loopback unless asked: whoever reaches a
    listener gets the instance role's credentials, so `--host 0.0.0.0` must not put them on the network."""

    def __init__(
        self,
        host: str,
        respond: Respond,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        max_body: int = limits.MAX_BODY_BYTES,
    ) -> None:
        self.host = host
        self.respond = respond
        self.request_timeout = request_timeout
        self.max_body = max_body
        self._servers: dict[str, asyncio.Server] = {}
        self._writers: dict[str, set[asyncio.StreamWriter]] = {}
        self._lock = asyncio.Lock()

    async def address(self, instance_id: str) -> tuple[str, int]:
        """The host and port the instance's listener is bound to, opening the listener on first use."""
        async with self._lock:
            server = self._servers.get(instance_id)
            if server is None:
                serve = functools.partial(self._connection, instance_id)
                server = self._servers[instance_id] = await asyncio.start_server(serve, self.host, 0)
        host, port = server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def open(self) -> list[str]:
        """The instances that have a listener now."""
        return list(self._servers)

    async def retire(self, instance_ids: Iterable[str]) -> None:
        """Close the listeners of these instances and their connections (terminated instances, or gone after a
        reset): each holds a socket, and a terminated instance never answers again."""
        names = list(instance_ids)
        async with self._lock:
            servers = [server for name in names if (server := self._servers.pop(name, None)) is not None]
            writers = [writer for name in names for writer in self._writers.pop(name, ())]
        await self._close(servers, writers)

    async def close(self) -> None:
        await self.retire(list(self._servers))

    @staticmethod
    async def _close(servers: list[asyncio.Server], writers: list[asyncio.StreamWriter]) -> None:
        for server in servers:
            server.close()
        for writer in writers:  # kept-alive connections would otherwise hold wait_closed() open
            writer.close()
        for server in servers:
            await server.wait_closed()

    async def _connection(self, instance_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if instance_id not in self._servers:  # retired while this connection was being accepted
            writer.close()
            return
        self._writers.setdefault(instance_id, set()).add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            fresh = True
            while await self._exchange(instance_id, conn, reader, writer, fresh):
                conn.start_next_cycle()
                fresh = False
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(conn, writer, error(400), head_only=False)
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("metadata listener for %s failed", instance_id)
        finally:
            self._writers.get(instance_id, set()).discard(writer)
            writer.close()

    async def _exchange(
        self,
        instance_id: str,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        fresh: bool,
    ) -> bool:
        """One request and its answer; False when the connection is to be closed. The request must arrive whole
        within the request timeout, counted from the connection's opening or, kept alive, from its first byte."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout if fresh else None

        async def next_event() -> object:
            nonlocal deadline
            while (event := conn.next_event()) is h11.NEED_DATA:
                if deadline is None:
                    data = await asyncio.wait_for(reader.read(65536), KEEP_ALIVE_SECONDS)
                    deadline = loop.time() + self.request_timeout
                else:
                    data = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
                conn.receive_data(data)
            return event

        request = await next_event()
        if not isinstance(request, h11.Request):
            return False
        headers = _headers(list(request.headers))
        length = headers.get("content-length", "0")
        received = 0
        if not length.isdigit() or int(length) > self.max_body:
            return await _refuse(conn, writer)
        while not isinstance(event := await next_event(), h11.EndOfMessage):  # skip any body
            if not isinstance(event, h11.Data):
                return False
            received += len(event.data)
            if received > self.max_body:  # chunked: no length to refuse up front
                return await _refuse(conn, writer)
        target = request.target.decode("latin-1").split("?", 1)[0]
        method = request.method.decode("latin-1")
        reply = await self.respond(instance_id, method, unquote(target), headers)
        if reply is None:
            return False  # the instance is not running: no answer at all
        await _send(conn, writer, reply, head_only=method == "HEAD")
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE


async def _refuse(conn: h11.Connection, writer: asyncio.StreamWriter) -> bool:
    """A body over the limit: answered at once and the connection closed, so the rest is never read."""
    page = error(413)
    await _send(
        conn, writer, Reply(page.status, page.body, page.content_type, (("Connection", "close"),)), head_only=False
    )
    return False


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, *, head_only: bool) -> None:
    reason = http.HTTPStatus(reply.status).phrase.encode()
    headers = [*_response_headers(reply), ("Server", SERVER_HEADER)]
    writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers, reason=reason)))
    if not head_only and reply.body:
        writer.write(conn.send(h11.Data(data=reply.body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
