"""Load generation for the benchmark: pre-signed raw requests, a cheap asyncio client, and a wrk driver.

Signing with botocore costs about 200 us a request, more than a fast server spends answering it, so requests are
signed once up front (a SigV4 signature stays valid for 15 minutes and none of the servers refuses a replay) and the
raw bytes are replayed.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

IAM_VERSION = "2010-05-08"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
LUA_SCRIPT = Path(__file__).with_name("replay.lua")


class Signer:
    """Builds complete HTTP/1.1 IAM query requests for one server, signed with botocore's SigV4Auth."""

    def __init__(self, port: int, access_key: str = "test", secret_key: str = "test", region: str = "us-east-1"):
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}/"
        self.auth = SigV4Auth(Credentials(access_key, secret_key), "iam", region)

    def sign(self, action: str, **params: str | int) -> bytes:
        body = urlencode({"Action": action, "Version": IAM_VERSION, **params})
        request = AWSRequest(method="POST", url=self.url, data=body, headers={"Content-Type": CONTENT_TYPE})
        self.auth.add_auth(request)
        lines = ["POST / HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        lines += [f"Content-Length: {len(body)}", "", ""]
        return "\r\n".join(lines).encode() + body.encode()


# ---------------------------------------------------------------------------------------------------------------------
# Reading responses


def _response_length(head: bytes) -> int | None:
    """Body length from Content-Length; None for chunked (read to the terminating chunk)."""
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at + 2)
        return int(lower[at + 17 : end if end >= 0 else None])
    if b"transfer-encoding: chunked" in lower:
        return None
    return 0


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    """(body, bytes consumed) once a whole chunked body is in data, else None."""
    out = bytearray()
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        size = int(data[at:end].split(b";", 1)[0], 16)
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return None
            return bytes(out), trailer_end + 4
        start = end + 2
        if len(data) < start + size + 2:
            return None
        out += data[start : start + size]
        at = start + size + 2


@dataclass
class Response:
    status: int
    head: bytes
    body: bytes


class RawConnection:
    """A blocking keep-alive connection for one-off requests (samples, walking pages)."""

    def __init__(self, port: int, timeout: float = 300.0):
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def request(self, raw: bytes) -> Response:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(raw)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self.buf[:end])
        del self.buf[: end + 4]
        length = _response_length(head)
        if length is None:
            while (parsed := _dechunk(bytes(self.buf))) is None:
                self._fill()
            body, used = parsed
        else:
            while len(self.buf) < length:
                self._fill()
            body, used = bytes(self.buf[:length]), length
        del self.buf[:used]
        if b"\r\nconnection: close" in head.lower():
            self.close()
        return Response(int(head[9:12]), head, body)

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf.clear()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    requests: int = 0
    errors: int = 0  # non-2xx responses plus broken connections
    elapsed: float = 0.0
    latencies_us: list[float] = field(default_factory=list)
    p50_us: float = 0.0
    p99_us: float = 0.0
    client_cpu: float = 0.0  # CPU seconds the load generator itself used
    statuses: Counter[int] = field(default_factory=Counter)
    exhausted: bool = False  # ran out of distinct pre-signed requests before the deadline

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU time as a share of one core over the run."""
        return self.client_cpu / self.elapsed if self.elapsed else 0.0

    def finish(self) -> Result:
        if self.latencies_us:
            ordered = sorted(self.latencies_us)
            self.p50_us = _percentile(ordered, 50)
            self.p99_us = _percentile(ordered, 99)
            self.latencies_us = []
        return self


def _percentile(ordered: list[float], pct: float) -> float:
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------------------------------------------------
# The asyncio client: one request in flight per connection, responses read by Content-Length


class _Client(asyncio.Protocol):
    """One connection. `closed` resolves to True when the run is over for it, or to False when the server closed the
    connection after a complete response (moto's Werkzeug server closes every connection) and the slot reconnects."""

    def __init__(self, feed: Callable[[], bytes | None], deadline: float, result: Result, closed: asyncio.Future[bool]):
        self.feed = feed
        self.deadline = deadline
        self.result = result
        self.closed = closed
        self.buf = bytearray()
        self.head_end = -1
        self.length: int | None = 0
        self.status = 0
        self.server_closes = False
        self.in_flight = False
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's
        self._send_next()

    def _send_next(self) -> None:
        if time.perf_counter() >= self.deadline:
            self._end(True)
            return
        raw = self.feed()
        if raw is None:
            self.result.exhausted = True
            self._end(True)
            return
        self.in_flight = True
        self.sent_at = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.head_end < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            self.head_end = end + 4
            self.status = int(head[9:12])
            self.length = _response_length(head)
            self.server_closes = b"\r\nconnection: close" in head.lower()
        if self.length is None:
            parsed = _dechunk(bytes(self.buf[self.head_end :]))
            if parsed is None:
                return
            used = self.head_end + parsed[1]
        else:
            used = self.head_end + self.length
            if len(self.buf) < used:
                return
        latency = time.perf_counter_ns() - self.sent_at
        self.in_flight = False
        result = self.result
        result.requests += 1
        result.latencies_us.append(latency / 1000)
        result.statuses[self.status] += 1
        if not 200 <= self.status < 300:
            result.errors += 1
        del self.buf[:used]
        self.head_end = -1
        if self.server_closes:
            self._end(time.perf_counter() >= self.deadline)
        else:
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:  # the server dropped a request it had not answered
            self.result.errors += 1
            self.in_flight = False
        self._end(True)

    def _end(self, finished: bool) -> None:
        if not self.closed.done():
            self.closed.set_result(finished)
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop()


def run_python(port: int, feed: Callable[[], bytes | None], duration: float, connections: int = 8) -> Result:
    """Keep `connections` requests in flight for `duration` seconds (or until feed() returns None).

    SIGINT and SIGTERM end the run and then raise KeyboardInterrupt here: raised inside a protocol callback, as a
    plain signal handler would, uvloop would only report it and go on."""
    loop = _new_loop()
    result = Result()
    clients: list[_Client] = []
    interrupted: list[int] = []

    def client(closed: asyncio.Future[bool], deadline: float) -> _Client:
        clients.append(_Client(feed, deadline, result, closed))
        return clients[-1]

    async def slot(deadline: float) -> None:
        while not interrupted:
            closed: asyncio.Future[bool] = loop.create_future()
            # (asyncio and uvloop both set TCP_NODELAY on the connections they make)
            await loop.create_connection(lambda c=closed: client(c, deadline), "127.0.0.1", port)
            if await closed:
                return

    async def main() -> None:
        deadline = time.perf_counter() + duration
        await asyncio.gather(*(slot(deadline) for _ in range(connections)))

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        for each in clients:
            each._end(True)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        loop.add_signal_handler(signum, on_signal, signum)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        loop.run_until_complete(main())
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)
        loop.close()
    if interrupted:
        raise KeyboardInterrupt
    result.elapsed = time.perf_counter() - wall0
    result.client_cpu = time.process_time() - cpu0
    return result.finish()


def run_all(port: int, requests: Iterable[bytes], connections: int = 8) -> Result:
    """Send each request exactly once, `connections` at a time."""
    iterator: Iterator[bytes] = iter(requests)
    return run_python(port, lambda: next(iterator, None), float("inf"), connections)


def repeat(raw: bytes) -> Callable[[], bytes]:
    return lambda: raw


def each_once(requests: list[bytes]) -> Callable[[], bytes | None]:
    iterator = iter(requests)
    return lambda: next(iterator, None)


# ---------------------------------------------------------------------------------------------------------------------
# wrk: the same pre-signed bytes, replayed by replay.lua


def wrk_available() -> bool:
    from shutil import which

    return which("wrk") is not None


def run_wrk(
    port: int, requests: list[bytes], duration: float, connections: int = 8, threads: int = 1, unique: bool = False
) -> Result:
    """Run wrk for `duration` seconds replaying `requests` (cycled; with unique=True each is sent at most once and a
    thread that runs out stops and sets `exhausted`)."""
    with tempfile.TemporaryDirectory(prefix="roleport-bench-wrk-") as tmp:
        pool = Path(tmp) / "requests.bin"
        pool.write_bytes(b"\0".join(requests))
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s"]
        command += ["--timeout", "120s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}/"]
        command += ["--", str(pool), str(threads), "unique" if unique else "cycle"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            command, capture_output=True, text=True, check=False, env=os.environ | {"LC_ALL": "C"}
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}{completed.stdout}")
    match = re.search(r"^BENCHRESULT (.*)$", completed.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {completed.stdout}{completed.stderr}")
    fields = dict(item.split("=", 1) for item in match.group(1).split())
    socket_errors = sum(int(fields[name]) for name in ("connect", "read", "write", "timeout"))
    result = Result(
        requests=int(fields["requests"]),
        errors=int(fields["status"]) + socket_errors,
        elapsed=int(fields["duration_us"]) / 1e6,
        p50_us=float(fields["p50_us"]),
        p99_us=float(fields["p99_us"]),
        client_cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        exhausted=fields.get("exhausted", "0") != "0",
    )
    return result
