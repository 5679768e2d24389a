"""Servers with EC2's passing states settled at once (`fast`) or lasting long enough to see (`slow`), shared by
the EC2 suites; each test module that asks gets its own, on the session's store backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from roleport.testing import RoleportServer

SLOW_TRANSITION = "1.5"  # seconds in a passing state on the `slow` server


def _server(backend: str | None, tmp_path_factory: pytest.TempPathFactory, name: str, seconds: str) -> RoleportServer:
    data_dir = tmp_path_factory.mktemp(name) / "data"
    return RoleportServer(
        data_dir=data_dir, database_url=backend, extra_args=["--state-transition-seconds", seconds]
    ).start()


@pytest.fixture(scope="module")
def fast(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """A server whose passing states settle at once: the next read sees running, stopped, associated..."""
    running = _server(backend, tmp_path_factory, "ec2-fast", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def slow(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """A server whose passing states last long enough for a test to see them whatever the machine's load."""
    running = _server(backend, tmp_path_factory, "ec2-slow", SLOW_TRANSITION)
    yield running
    running.stop()


@pytest.fixture
def ec2_slow(slow: RoleportServer) -> Any:
    return slow.client("ec2")


@pytest.fixture
def iam_slow(slow: RoleportServer) -> Any:
    return slow.client("iam")


@pytest.fixture
def ec2(server: RoleportServer) -> Any:
    return server.client("ec2")


@pytest.fixture
def ec2_now(fast: RoleportServer) -> Any:
    return fast.client("ec2")


@pytest.fixture
def iam_now(fast: RoleportServer) -> Any:
    return fast.client("iam")
