"""Fixtures that start the real roleport server as a subprocess and hand out real clients for it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.config import Config

if TYPE_CHECKING:
    from roleport.testing import RoleportServer

# roleport's own pytest plugin, as users load it (tests/e2e/test_testing_plugin.py); pytester runs user suites.
pytest_plugins = ["roleport.testing", "pytester"]

ROOT_KEY, ROOT_SECRET = "test", "test"
ONE_TRY = Config(retries={"max_attempts": 1})
POSTGRES_URL = os.environ.get("ROLEPORT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    # Imported late: roleport.testing is loaded as a plugin (pytest_plugins), which must import it first.
    from roleport import testing

    return testing.free_port()


def start_server(data_dir: Path, **flags: Any) -> RoleportServer:
    """A `roleport serve` with the suites' root keys and its output beside its data dir; clients it makes try each
    request once, so a test sees the server's first answer, not a retry's."""
    from roleport.testing import RoleportServer

    flags.setdefault("access_key", ROOT_KEY)
    flags.setdefault("secret_key", ROOT_SECRET)
    log_file = data_dir.parent / f"{data_dir.name}.log"
    return RoleportServer(data_dir=data_dir, log_file=log_file, client_config=ONE_TRY, **flags).start()


def cli_env(server: RoleportServer) -> dict[str, str]:
    """The environment for the aws CLI and other subprocesses: this process's, without any AWS settings of the
    machine's, pointed at `server` with its root keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.environment(), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    del env["AWS_REGION"]  # the CLI reads AWS_DEFAULT_REGION, which a test may change alone
    return env


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test session, dropped afterwards; skips when none is reachable."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed, so the PostgreSQL store cannot be tested")
    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"roleport_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        if os.environ.get("ROLEPORT_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL reachable at {POSTGRES_URL} ({error.__class__.__name__}); SQLite only")
    base, _, _ = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """The store behind the shared server: SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
    else:
        yield from postgres_database()


@pytest.fixture(scope="session")
def server(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """One server per test session and backend; tests keep to their own names so they can share it."""
    running = start_server(tmp_path_factory.mktemp("roleport") / "data", database_url=backend)
    yield running
    running.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RoleportServer]]:
    """Servers of a test's own, for restarts and special flags (`roleport serve`'s, with underscores); stopped when
    the test ends."""
    started: list[RoleportServer] = []

    def make(data_dir: Path | None = None, **flags: Any) -> RoleportServer:
        running = start_server(data_dir or tmp_path / f"data{len(started)}", **flags)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def iam(server: RoleportServer) -> Any:
    return server.client("iam")


@pytest.fixture
def sts(server: RoleportServer) -> Any:
    return server.client("sts")


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique resource names, so tests sharing a server never collide."""
    suffix = uuid.uuid4().hex[:10]
    return lambda base: f"{base}-{suffix}"


EC2_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
