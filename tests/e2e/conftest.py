"""Servers for the EC2 suites: one whose passing states settle at once (`fast`), and one on the controlled clock
(`clocked`) whose states pass only when a test moves the clock, so a test sees pending, then running, whatever the
machine's load. Each test module that asks gets its own, on the session's store backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import start_server

# Seconds of the controlled clock that a passing state (pending, stopping, associating...) lasts on `clocked`.
TRANSITION = 5.0


@pytest.fixture(scope="module")
def fast(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """A server whose passing states settle at once: the next read sees running, stopped, associated..."""
    running = start_server(
        tmp_path_factory.mktemp("ec2-fast") / "data", database_url=backend, state_transition_seconds=0
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clocked(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """A server on the controlled clock: its passing states last until a test moves the clock by TRANSITION."""
    data_dir = tmp_path_factory.mktemp("ec2-clocked") / "data"
    running = start_server(data_dir, database_url=backend, clock="controlled", state_transition_seconds=TRANSITION)
    yield running
    running.stop()


@pytest.fixture
def ec2_clocked(clocked: RoleportServer) -> Any:
    return clocked.client("ec2")


@pytest.fixture
def iam_clocked(clocked: RoleportServer) -> Any:
    return clocked.client("iam")


@pytest.fixture
def ec2(server: RoleportServer) -> Any:
    return server.client("ec2")


@pytest.fixture
def ec2_now(fast: RoleportServer) -> Any:
    return fast.client("ec2")


@pytest.fixture
def iam_now(fast: RoleportServer) -> Any:
    return fast.client("iam")
