"""What one request may cost the server (issue 12's probe): body size, time to arrive, and the descriptors and
addresses of the per-instance metadata listeners."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport.testing import RoleportServer
from tests.conftest import ROOT_KEY, ROOT_SECRET, start_server

AMI = "ami-0abcdef1234567890"
HUGE = 100 * 1024 * 1024
LIMIT = 1 << 20  # limits.MAX_BODY_BYTES


# --- the server process, seen from outside ---------------------------------------------------------------------------


def pid(server: RoleportServer) -> int:
    assert server.process is not None
    return server.process.pid


def fd_count(server: RoleportServer) -> int:
    return len(os.listdir(f"/proc/{pid(server)}/fd"))


def settled_fd_count(server: RoleportServer) -> int:
    """The descriptor count once the connections of the test's previous requests are closed on the server's side
    too (a client's close reaches the server a moment later)."""
    deadline, last, since = time.monotonic() + 3, fd_count(server), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 0.3:
        time.sleep(0.05)
        count = fd_count(server)
        if count != last:
            last, since = count, time.monotonic()
    return last


def rss_bytes(server: RoleportServer) -> int:
    for line in Path(f"/proc/{pid(server)}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Polls until check() holds, for at most `seconds` (the state it waits for is normally reached in about one)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def exchange(port: int, head: bytes, body: bytes = b"", *, timeout: float = 10.0) -> bytes:
    """Send a request (perhaps only the start of its body) and read everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def send_until_answered(port: int, head: bytes, body: bytes, piece: int = 65536) -> bytes:
    """Send a request a piece at a time, stopping once the server answers, then read the answer: bytes the server
    never reads would make its close a reset, which can cost the client the answer already on its way."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for start in range(0, len(body), piece):
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(body[start : start + piece])
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
        return received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def chunked(total: int, piece: int = 65536) -> bytes:
    out = []
    for start in range(0, total, piece):
        size = min(piece, total - start)
        out.append(b"%x\r\n" % size + b"a" * size + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def signed_get(url: str) -> Any:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "roleport", "us-east-1").add_auth(request)
    raw = urllib.request.Request(url, headers=dict(request.prepare().headers))
    with urllib.request.urlopen(raw, timeout=10) as response:
        return json.load(response)


def signed_post(url: str, body: bytes = b"") -> Any:
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "roleport", "us-east-1").add_auth(request)
    raw = urllib.request.Request(url, data=body, method="POST", headers=dict(request.prepare().headers))
    with urllib.request.urlopen(raw, timeout=10) as response:
        return json.load(response)


def listener(server: RoleportServer, instance_id: str) -> tuple[str, int]:
    endpoint = signed_get(f"{server.endpoint_url}/_roleport/instances/{instance_id}/metadata-endpoint")["Endpoint"]
    host, _, port = endpoint.removeprefix("http://").rstrip("/").rpartition(":")
    return host, int(port)


def launch(server: RoleportServer, count: int) -> list[str]:
    reservation = server.client("ec2").run_instances(ImageId=AMI, MinCount=count, MaxCount=count)
    return [instance["InstanceId"] for instance in reservation["Instances"]]


# --- 1. bodies are refused before they are read ----------------------------------------------------------------------


def head(path: str, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"{size}{extra}\r\n"
    ).encode()


def test_a_100_mb_content_length_is_refused_at_once_as_aws_does(server: RoleportServer) -> None:
    started = time.monotonic()
    answer = exchange(server.port, head("/", HUGE), b"Action=ListRoles&Version=2010-05-08")
    assert time.monotonic() - started < 5  # answered from the head, not after waiting for 100 MB
    assert status_of(answer) == 413
    assert b"connection: close" in answer.lower()
    assert b"<Code>RequestEntityTooLargeException</Code>" in answer
    assert b"<Message>The request entity is too large.</Message>" in answer
    assert b"<ErrorResponse" in answer and b"<RequestId>" in answer


def test_the_ec2_refusal_has_ec2s_envelope(server: RoleportServer) -> None:
    request = AWSRequest(
        method="POST", url=server.endpoint_url + "/", data=b"Action=DescribeInstances&Version=2016-11-15"
    )
    SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "ec2", "us-east-1").add_auth(request)
    auth, date = request.headers["Authorization"], request.headers["X-Amz-Date"]
    answer = exchange(server.port, head("/", HUGE, f"Authorization: {auth}\r\nX-Amz-Date: {date}\r\n"))
    assert status_of(answer) == 413
    assert b"<Response><Errors><Error><Code>RequestEntityTooLargeException</Code>" in answer


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/_roleport/reset", b'"Code":"RequestEntityTooLargeException"'),
        ("/_roleport/clock", b'"Code":"RequestEntityTooLargeException"'),
        ("/console/signin", b"413 Request Entity Too Large"),
        ("/imds/i-0123456789abcdef0/latest/api/token", b"<h1>413 - Request Entity Too Large</h1>"),
    ],
)
def test_every_route_refuses_a_large_content_length(server: RoleportServer, path: str, marker: bytes) -> None:
    answer = exchange(server.port, head(path, HUGE), b"x" * 1000)
    assert status_of(answer) == 413
    assert marker in answer


@pytest.mark.parametrize("path", ["/", "/console/signin", "/_roleport/reset"])
def test_a_chunked_body_over_the_limit_is_refused(server: RoleportServer, path: str) -> None:
    answer = send_until_answered(server.port, head(path, None), chunked(LIMIT + 65536))
    assert status_of(answer) == 413


def test_a_chunked_body_within_the_limit_is_read(server: RoleportServer) -> None:
    answer = exchange(server.port, head("/", None, "Connection: close\r\n"), chunked(LIMIT - 1024))
    assert status_of(answer) == 400  # not a form, so refused for that, not for its size
    assert b"<Code>InvalidAction</Code>" in answer


def test_the_server_does_not_keep_a_refused_body(server: RoleportServer) -> None:
    before = rss_bytes(server)
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head("/", None))
            piece = b"%x\r\n" % (1 << 20) + b"b" * (1 << 20) + b"\r\n"
            try:
                for _ in range(100):  # 100 MB, unless the server hangs up first
                    sock.sendall(piece)
            except OSError:
                pass
    grown = rss_bytes(server) - before
    assert grown < 30 * 1024 * 1024, f"server grew by {grown / 2**20:.0f} MiB"


def test_a_metadata_listener_refuses_large_bodies(imds_server: RoleportServer) -> None:
    (instance_id,) = launch(imds_server, 1)
    _, port = listener(imds_server, instance_id)
    answer = exchange(port, head("/latest/api/token", HUGE))
    assert status_of(answer) == 413
    assert b"<h1>413 - Request Entity Too Large</h1>" in answer
    answer = send_until_answered(port, head("/latest/api/token", None), chunked(LIMIT + 65536))
    assert status_of(answer) == 413


# --- 3 and 4. the per-instance metadata listeners ------------------------------------------------------------------


@pytest.fixture
def imds_server(backend: str | None, make_server: Callable[..., RoleportServer]) -> RoleportServer:
    """A server of the test's own (descriptor counts must not see other tests' work), on the session's backend."""
    return make_server(database_url=backend, state_transition_seconds=0)


def test_listeners_of_terminated_instances_are_closed(imds_server: RoleportServer) -> None:
    ec2 = imds_server.client("ec2")
    baseline = settled_fd_count(imds_server)
    ids = launch(imds_server, 8)
    for instance_id in ids:
        listener(imds_server, instance_id)
    opened = settled_fd_count(imds_server)
    assert opened >= baseline + 8
    ec2.terminate_instances(InstanceIds=ids[:6])
    assert wait_for(lambda: fd_count(imds_server) <= opened - 6), (baseline, opened, fd_count(imds_server))
    # The listeners of instances still running stay open and answer.
    _, port = listener(imds_server, ids[6])
    request = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert status_of(exchange(port, request)) == 200


def test_a_terminated_instance_gets_no_listener(imds_server: RoleportServer) -> None:
    (instance_id,) = launch(imds_server, 1)
    imds_server.client("ec2").terminate_instances(InstanceIds=[instance_id])
    url = f"{imds_server.endpoint_url}/_roleport/instances/{instance_id}/metadata-endpoint"
    with pytest.raises(urllib.error.HTTPError) as refused:
        signed_get(url)
    assert refused.value.code == 400
    assert json.load(refused.value)["Error"]["Code"] == "IncorrectInstanceState"
    refused.value.close()


def test_a_reset_closes_every_listener(imds_server: RoleportServer) -> None:
    baseline = settled_fd_count(imds_server)
    ids = launch(imds_server, 5)
    ports = [listener(imds_server, instance_id)[1] for instance_id in ids]
    assert all(listening_address(imds_server, port) == "127.0.0.1" for port in ports)
    signed_post(f"{imds_server.endpoint_url}/_roleport/reset")
    for port in ports:  # closed before the reset answers, not at the next sweep
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert wait_for(lambda: fd_count(imds_server) <= baseline, 5), (baseline, fd_count(imds_server))


def listening_address(server: RoleportServer, port: int) -> str:
    """The local address a listening TCP socket of the server process is bound to, from /proc/PID/net/tcp."""
    for line in Path(f"/proc/{pid(server)}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    raise AssertionError(f"no listening socket on port {port}")


def test_listeners_bind_loopback_even_when_the_server_binds_every_address(
    make_server: Callable[..., RoleportServer],
) -> None:
    server = make_server(host="0.0.0.0", state_transition_seconds=0)
    assert listening_address(server, server.port) == "0.0.0.0"
    (instance_id,) = launch(server, 1)
    host, port = listener(server, instance_id)
    assert host == "127.0.0.1"
    assert listening_address(server, port) == "127.0.0.1"


# --- 2. requests must arrive in time --------------------------------------------------------------------------------

TIMEOUT = 2.0  # long enough for 40 connections to open on a loaded machine before the first is closed


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[RoleportServer]:
    running = start_server(tmp_path / "data", request_timeout=TIMEOUT, state_transition_seconds=0)
    yield running
    running.stop()


HALF_SENT = [
    b"",  # connected, nothing sent
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # half a head
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nAction=",  # half a body
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # half a chunk
]


def hold_half_sent(port: int, count: int) -> list[socket.socket]:
    held = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(HALF_SENT[index % len(HALF_SENT)])
        held.append(sock)
    return held


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("where", ["main", "listener"])
def test_half_sent_requests_are_closed_after_the_request_timeout(timed: RoleportServer, where: str) -> None:
    port = timed.port
    if where == "listener":
        (instance_id,) = launch(timed, 1)
        port = listener(timed, instance_id)[1]
    baseline = settled_fd_count(timed)
    held = hold_half_sent(port, 40)
    try:
        assert wait_for(lambda: fd_count(timed) >= baseline + 40, TIMEOUT), (baseline, fd_count(timed))
        assert wait_for(lambda: fd_count(timed) <= baseline, 10 * TIMEOUT), (baseline, fd_count(timed))
        assert all(closed_by_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
    # The server still answers requests that arrive in time.
    assert timed.health()["status"] == "ok"


def test_a_trickled_request_is_closed_though_bytes_keep_coming(timed: RoleportServer) -> None:
    with socket.create_connection(("127.0.0.1", timed.port), timeout=10) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /_roleport/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
                sock.sendall(bytes([byte]))
                time.sleep(TIMEOUT / 10)
                if time.monotonic() - started > 5 * TIMEOUT:
                    break
        except OSError:
            pass
        assert closed_by_server(sock)
        assert time.monotonic() - started < 5 * TIMEOUT


def test_a_kept_alive_connection_serves_requests_that_arrive_in_time(timed: RoleportServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", timed.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/_roleport/health")
            with connection.getresponse() as response:
                assert response.status == 200
                response.read()
            time.sleep(TIMEOUT * 0.6)  # idle between requests is the keep-alive timeout's business (5 s)
        assert connection.sock is not None  # one connection throughout, never closed by the server
    finally:
        connection.close()


def test_a_head_without_end_is_refused_past_its_limit(timed: RoleportServer) -> None:
    before = rss_bytes(timed)
    with socket.create_connection(("127.0.0.1", timed.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /_roleport/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ")
        answer = b""
        try:
            for _ in range(1000):  # up to 64 MB of one header, unless the server hangs up first
                sock.sendall(b"a" * 65536)
        except OSError:
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        refused_after = time.monotonic() - started
    # Refused as soon as the head passed its limit, not merely closed at the request timeout.
    assert refused_after < TIMEOUT * 0.75, refused_after
    assert answer == b"" or status_of(answer) == 431  # the answer may be lost to the reset of the unread rest
    assert rss_bytes(timed) - before < 16 * 1024 * 1024
    # A head within the limit is served.
    long_header = b"X-Long: " + b"a" * 30000 + b"\r\n"
    answer = exchange(
        timed.port, b"GET /_roleport/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + long_header + b"\r\n"
    )
    assert status_of(answer) == 200


def test_a_head_over_its_limit_in_one_write_is_refused(timed: RoleportServer) -> None:
    """The bound holds for a head that arrives in one read too, not only across reads."""
    long_header = b"X-Long: " + b"a" * 70000 + b"\r\n"
    head = b"GET /_roleport/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + long_header + b"\r\n"
    assert status_of(exchange(timed.port, head)) == 431
    # A head under the limit with a large body in the same write is not mistaken for a large head.
    body = b"Action=GetCallerIdentity&Version=2011-06-15&" + b"x=" + b"a" * 200000
    answer = exchange(timed.port, head_of_post(len(body)) + body)
    assert status_of(answer) != 431


def head_of_post(length: int) -> bytes:
    return f"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n".encode()


def test_a_pipelined_request_cut_short_is_closed_by_its_deadline(timed: RoleportServer) -> None:
    """A request whose head arrives with the end of the one before it still has a deadline for its body."""
    with socket.create_connection(("127.0.0.1", timed.port), timeout=10) as sock:
        sock.sendall(
            b"GET /_roleport/health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nAction="
        )
        first = sock.recv(65536)
        assert status_of(first) == 200
        assert wait_for(lambda: closed_by_server(sock), TIMEOUT * 4)
