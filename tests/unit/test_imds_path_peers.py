"""The metadata service on the main port's `/imds/` paths answers the callers its own listeners would admit: with
`--host 0.0.0.0` the API is on the network, the instances' credentials are not (in-process: a peer address other
than loopback cannot be made on this machine's own network)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from roleport.imds.replies import Reply
from roleport.imds.transport import PathEndpoint

SECRET = Reply(200, b"credentials", "text/plain", ())


def fetch(endpoint: PathEndpoint, peer: str) -> tuple[int, bytes, list[str]]:
    asked: list[str] = []
    sent: list[dict[str, Any]] = []

    async def respond(instance_id: str, method: str, path: str, headers: Mapping[str, str]) -> Reply:
        asked.append(f"{instance_id}{path}")
        return SECRET

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    endpoint.respond = respond
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/imds/i-0123456789abcdef0/latest/meta-data/iam/security-credentials/R",
        "headers": [],
        "client": (peer, 40000),
    }
    asyncio.run(endpoint(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], asked


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_callers_are_served(peer: str) -> None:
    status, body, asked = fetch(PathEndpoint(None, "127.0.0.1"), peer)  # type: ignore[arg-type]
    assert (status, body, asked) == (
        200,
        b"credentials",
        ["i-0123456789abcdef0/latest/meta-data/iam/security-credentials/R"],
    )


@pytest.mark.parametrize("peer", ["192.0.2.7", "2001:db8::1"])
def test_other_callers_get_forbidden_and_the_instance_is_not_asked(peer: str) -> None:
    status, body, asked = fetch(PathEndpoint(None, "127.0.0.1"), peer)  # type: ignore[arg-type]
    assert status == 403 and b"credentials" not in body and asked == []


def test_a_wide_metadata_host_serves_every_caller() -> None:
    status, body, _ = fetch(PathEndpoint(None, "0.0.0.0"), "192.0.2.7")  # type: ignore[arg-type]
    assert (status, body) == (200, b"credentials")


def test_a_dual_stack_listener_sees_local_callers_as_loopback() -> None:
    status, body, _ = fetch(PathEndpoint(None, "127.0.0.1"), "::ffff:127.0.0.1")  # type: ignore[arg-type]
    assert (status, body) == (200, b"credentials")
