"""roleport in your own test suite: a server on a free port, boto3 clients for it, and its clock and control endpoints.

As a pytest plugin (``pytest_plugins = ["roleport.testing"]`` in your ``conftest.py``):

* ``roleport_server``: one ``roleport serve`` subprocess for the test session, on a free port with a temporary data
  directory. Its flags come from the ``roleport_options`` fixture; override that fixture to change them, e.g.
  ``{"clock": "controlled", "propagation_delay": 5}``.
* ``roleport``: the same server for one test, emptied first (``reset``) with the propagation settings it started with.
* ``roleport_session``: a ``boto3.Session`` with the server's root credentials and region.

Outside pytest, ``with RoleportServer(clock="controlled") as server: ...`` does the same.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport import server_file

try:
    import pytest
except ImportError:  # the server class needs no pytest; only the fixtures do
    pytest = None  # type: ignore[assignment]


class RoleportError(Exception):
    """A control endpoint refused a request: `code` and `message` as the server gave them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RoleportServer:
    """One `roleport serve` process. Keyword options are its flags with underscores (``propagation_delay=5``,
    ``clock="controlled"``, ``database_url=...``); True adds a bare flag, a list repeats it once per value.

    ``access_key=None, secret_key=None`` let the server make (or reuse, in its data dir) its own root pair, which
    ``start()`` reads back. ``log_file`` takes the server's output (default: ``server.log`` in the data dir).
    ``client_config``, a ``botocore.config.Config``, is merged into every client that ``client()`` makes.
    ``stop()`` then ``start()`` restarts the server on the same port and data, so state survives as in production.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        access_key: str | None = "test",
        secret_key: str | None = "test",
        region: str = "us-east-1",
        startup_timeout: float = 30.0,
        log_file: str | Path | None = None,
        client_config: Any = None,
        **flags: Any,
    ) -> None:
        # 0: the server takes a free port and says which in its server.json (no race with other processes); a restart
        # keeps the port it got.
        self.port = port or 0
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="roleport-"))
        # Without both keys the server's own pair is used: the flags name none, and start() learns it from server.json.
        self._keys_from_server = access_key is None or secret_key is None
        self.access_key, self.secret_key = access_key or "", secret_key or ""
        self.region = region
        self.startup_timeout = startup_timeout
        self.log_file = Path(log_file) if log_file is not None else self.data_dir / "server.log"
        self.client_config = client_config
        self.flags = flags
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "roleport", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if not self._keys_from_server:
            args += ["--root-access-key", self.access_key, "--root-secret-key", self.secret_key]
        args += ["--region", self.region]
        for name, value in self.flags.items():
            flag = "--" + name.replace("_", "-")
            for one in value if isinstance(value, list | tuple) else [value]:
                if one is True:
                    args.append(flag)
                elif one is not None and one is not False:
                    args += [flag, str(one)]
        return args

    def start(self) -> RoleportServer:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - the process owns it from here
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"roleport exited with {self.process.returncode}; see {self.log_file}")
            try:
                record = server_file.read(self.data_dir)
                if record is not None and record.pid == self.process.pid:
                    self.port = int(record.url.rsplit(":", 1)[1])
                    if self._keys_from_server:
                        self.access_key, self.secret_key = record.access_key_id, record.secret_access_key
                    with urllib.request.urlopen(f"{self.endpoint_url}/_roleport/health", timeout=1):
                        return self
            except (OSError, server_file.UnreadableServerFile):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"roleport did not answer within {self.startup_timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RoleportServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- clients ---------------------------------------------------------------------------------------------------

    def session(self) -> Any:
        import boto3

        return boto3.Session(
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key, region_name=self.region
        )

    def client(
        self,
        service: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """A boto3 client for this server: with the root keys, or with the keys given in their place (an IAM user's,
        a role session's with its token). Other keywords go to ``boto3.Session.client``."""
        if self.client_config is not None:
            kwargs["config"] = self.client_config.merge(kwargs["config"]) if "config" in kwargs else self.client_config
        if access_key is None and secret_key is None and session_token is None:
            return self.session().client(service, endpoint_url=self.endpoint_url, **kwargs)
        import boto3

        session = boto3.Session(
            aws_access_key_id=self.access_key if access_key is None else access_key,
            aws_secret_access_key=self.secret_key if secret_key is None else secret_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.endpoint_url, **kwargs)

    def environment(self, instance_id: str | None = None) -> dict[str, str]:
        """Variables that point the aws CLI and the SDKs at this server; with an instance, its metadata service
        too (the path form that botocore accepts), and no keys, so credentials come from IMDS as on EC2."""
        env = {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        if instance_id is None:
            return {**env, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        return {**env, "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.metadata_endpoint(instance_id)}

    def metadata_endpoint(self, instance_id: str) -> str:
        return f"{self.endpoint_url}/imds/{instance_id}/"

    # --- control endpoints -----------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The server's unsigned health answer: {"status": "ok", ...}."""
        with urllib.request.urlopen(f"{self.endpoint_url}/_roleport/health", timeout=5) as response:
            return dict(json.load(response))

    def now(self) -> datetime:
        return _parse_time(self._call("GET", "/_roleport/clock")["now"])

    def advance(self, seconds: float) -> datetime:
        """Move a controlled clock forward (the server must run with clock="controlled")."""
        return _parse_time(self._call("POST", "/_roleport/clock", {"advance_seconds": seconds})["now"])

    def set_clock(self, when: datetime | str) -> datetime:
        text = when.isoformat() if isinstance(when, datetime) else when
        return _parse_time(self._call("POST", "/_roleport/clock", {"set": text})["now"])

    def propagation(self) -> dict[str, Any]:
        """The delays and the changes still pending: {"delay_seconds", "jitter_seconds",
        "association_delay_seconds", "pending": [{"stream", "visible_at", "row_changes"}]}."""
        return self._call("GET", "/_roleport/propagation")

    def set_propagation(
        self, *, delay: float | None = None, jitter: float | None = None, association_delay: float | None = None
    ) -> dict[str, Any]:
        order = {"delay_seconds": delay, "jitter_seconds": jitter, "association_delay_seconds": association_delay}
        return self._call("POST", "/_roleport/propagation", {k: v for k, v in order.items() if v is not None})

    def flush(self) -> int:
        """Make every pending IAM and association change visible now."""
        return int(self._call("POST", "/_roleport/propagation/flush")["flushed_row_changes"])

    def reset(self) -> None:
        """Empty the server's state (roles, profiles, users, instances, sessions); the root keys stay."""
        self._call("POST", "/_roleport/reset")

    def _call(self, method: str, path: str, order: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(order).encode() if order is not None else b""
        request = AWSRequest(method=method, url=f"{self.endpoint_url}{path}", data=data)
        SigV4Auth(Credentials(self.access_key, self.secret_key), "roleport", self.region).add_auth(request)
        prepared = request.prepare()
        raw = urllib.request.Request(
            prepared.url, data=prepared.body or None, method=method, headers=dict(prepared.headers)
        )
        try:
            with urllib.request.urlopen(raw, timeout=30) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as failure:
            with failure:
                error = json.loads(failure.read()).get("Error", {})
            raise RoleportError(failure.code, error.get("Code", ""), error.get("Message", "")) from None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


if pytest is not None:

    @pytest.fixture(scope="session")
    def roleport_options() -> dict[str, Any]:
        """The flags of the session's server; override this fixture in your conftest.py to change them."""
        return {}

    @pytest.fixture(scope="session")
    def roleport_server(roleport_options: dict[str, Any]) -> Iterator[RoleportServer]:
        with RoleportServer(**roleport_options) as server:
            yield server

    @pytest.fixture
    def roleport(roleport_server: RoleportServer) -> Iterator[RoleportServer]:
        """The session's server, empty, with its starting propagation settings, for one test."""
        started = {
            "delay": float(roleport_server.flags.get("propagation_delay") or 0),
            "jitter": float(roleport_server.flags.get("propagation_jitter") or 0),
            "association_delay": float(roleport_server.flags.get("association_delay") or 0),
        }
        roleport_server.set_propagation(**started)
        roleport_server.reset()
        yield roleport_server

    @pytest.fixture
    def roleport_session(roleport: RoleportServer) -> Any:
        return roleport.session()


__all__ = ["RoleportError", "RoleportServer", "free_port"]
