"""Fixtures that start the real roleport server as a subprocess and hand out real clients for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

# roleport's own pytest plugin, as users load it (tests/e2e/test_testing_plugin.py); pytester runs user suites.
pytest_plugins = ["roleport.testing", "pytester"]

ROOT_KEY, ROOT_SECRET = "test", "test"
POSTGRES_URL = os.environ.get("ROLEPORT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    # Imported late: roleport.testing is loaded as a plugin (pytest_plugins), which must import it first.
    from roleport import testing

    return testing.free_port()


@dataclass
class Server:
    """A `roleport serve` process on a free port; stop() and start() again keep its data."""

    data_dir: Path
    database_url: str | None = None
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "roleport", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        args += ["--root-access-key", ROOT_KEY, "--root-secret-key", ROOT_SECRET]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args + self.extra_args

    def start(self) -> Server:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"roleport exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/_roleport/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()  # no server may outlive the test that could not use it
        raise RuntimeError("roleport did not become healthy in 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_roleport/health", timeout=5) as response:
            return dict(json.load(response))

    def client(self, service: str, **kwargs: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=kwargs.pop("key", ROOT_KEY),
            aws_secret_access_key=kwargs.pop("secret", ROOT_SECRET),
            config=Config(retries={"max_attempts": 1}, **kwargs),
        )

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.url,
            AWS_ACCESS_KEY_ID=ROOT_KEY,
            AWS_SECRET_ACCESS_KEY=ROOT_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
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
def server(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test session and backend; tests keep to their own names so they can share it."""
    running = Server(data_dir=tmp_path_factory.mktemp("roleport") / "data", database_url=backend).start()
    yield running
    running.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Servers of a test's own, for restarts and special flags; stopped when the test ends."""
    started: list[Server] = []

    def make(**kwargs: Any) -> Server:
        kwargs.setdefault("data_dir", tmp_path / f"data{len(started)}")
        running = Server(**kwargs).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def iam(server: Server) -> Any:
    return server.client("iam")


@pytest.fixture
def sts(server: Server) -> Any:
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
