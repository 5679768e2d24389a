"""`roleport exec` and the SDKs that run under it: the aws CLI, boto3 and the AWS SDK for JavaScript v3, each with
no keys of its own, find the instance's role through the instance's metadata service."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roleport.testing import RoleportServer
from tests.conftest import ROOT_KEY, ROOT_SECRET, start_server
from tests.e2e.test_imds import CREDENTIALS, Instance, dedicated_endpoint, get, instance_env, launch

# Pinned, so the test means the same thing on every machine (and keeps running on node 20: later releases of the SDK
# announce that they will need node 22). The cache folder is named for the versions.
JS_PACKAGES = ("@aws-sdk/credential-providers@3.1173.0", "@aws-sdk/client-sts@3.1173.0")
JS_SCRIPT = Path(__file__).parent / "js" / "instance_credentials.cjs"


@pytest.fixture(scope="module")
def exec_server(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    data_dir = tmp_path_factory.mktemp("exec") / "data"
    running = start_server(data_dir, database_url=backend, state_transition_seconds=0)
    yield running
    running.stop()


@pytest.fixture
def instance(exec_server: RoleportServer) -> Instance:
    return launch(exec_server)


def roleport_exec(server: RoleportServer, instance_id: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`roleport exec` from a shell that holds the root keys and a profile, which the command must not see."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ROOT_KEY,
        "AWS_SECRET_ACCESS_KEY": ROOT_SECRET,
        "AWS_SESSION_TOKEN": "leaked",
        "AWS_PROFILE": "leaked",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server_options = ["--port", str(server.port), "--data-dir", str(server.data_dir)]
    server_options += ["--root-access-key", ROOT_KEY, "--root-secret-key", ROOT_SECRET]
    args = [sys.executable, "-m", "roleport", "exec", *server_options, instance_id, "--", *command]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def assumed_role(instance: Instance) -> str:
    return f"arn:aws:sts::123456789012:assumed-role/{instance.role}/{instance.id}"


def test_exec_aws_cli_is_the_instance_role(exec_server: RoleportServer, instance: Instance) -> None:
    done = roleport_exec(exec_server, instance.id, "aws", "sts", "get-caller-identity", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == assumed_role(instance)


def test_exec_boto3_is_the_instance_role(exec_server: RoleportServer, instance: Instance) -> None:
    script = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    done = roleport_exec(exec_server, instance.id, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == assumed_role(instance)


def test_exec_environment_has_no_keys_and_the_dedicated_endpoint(
    exec_server: RoleportServer, instance: Instance
) -> None:
    script = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('AWS_')}))"
    done = roleport_exec(exec_server, instance.id, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        assert name not in found
    assert "AWS_EC2_METADATA_DISABLED" not in found
    assert (found["AWS_ENDPOINT_URL"], found["AWS_REGION"], found["AWS_DEFAULT_REGION"]) == (
        exec_server.endpoint_url,
        "us-east-1",
        "us-east-1",
    )
    assert found["AWS_CONFIG_FILE"] == found["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert found["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == dedicated_endpoint(exec_server, instance.id).json()["Endpoint"]


def test_exec_unknown_instance_fails_before_running_anything(exec_server: RoleportServer) -> None:
    done = roleport_exec(exec_server, "i-0123456789abcdef0", sys.executable, "-c", "print('ran')")
    assert done.returncode == 1
    assert "ran" not in done.stdout
    assert "InvalidInstanceID.NotFound" in done.stderr


def test_exec_missing_command_is_127(exec_server: RoleportServer, instance: Instance) -> None:
    done = roleport_exec(exec_server, instance.id, "no-such-command-for-roleport")
    assert done.returncode == 127
    assert "cannot run no-such-command-for-roleport" in done.stderr


def test_exec_without_a_server_says_where_it_looked(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "roleport", "exec", "--port", "1", "--data-dir", str(tmp_path), "i-0123456789abcdef0"]
    done = subprocess.run([*args, "--", "true"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        f"roleport: nothing answers at http://127.0.0.1:1: start roleport with `roleport serve --data-dir {tmp_path}`\n"
    )


# --- the AWS SDK for JavaScript v3 -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """node_modules with the SDK packages, installed with npm once per machine into a cached temp dir (a file lock
    keeps parallel workers from installing at the same time)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the AWS SDK for JavaScript v3")
    folder = Path(tempfile.gettempdir()) / f"roleport-test-js-sdk-{JS_PACKAGES[0].rpartition('@')[2]}"
    folder.mkdir(exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / "@aws-sdk" / "credential-providers").is_dir():
            (folder / "package.json").write_text('{"name": "roleport-test-js", "private": true}\n')
            command = ["npm", "install", "--no-audit", "--no-fund", "--no-save", *JS_PACKAGES]
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"npm install failed:\n{done.stderr}"
    return folder / "node_modules"


def node(js_sdk: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(JS_SCRIPT), *args],
        env={**env, "NODE_PATH": str(js_sdk), "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_js(js_sdk: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    done = node(js_sdk, env, *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_js_sdk_keeps_only_host_and_port_of_the_endpoint(
    js_sdk: Path, exec_server: RoleportServer, instance: Instance
) -> None:
    """Why instances have listeners of their own: given the path form, the SDK asks the main port for
    /latest/api/token and /latest/meta-data/..., dropping /imds/i-.../, and finds nothing there."""
    done = node(js_sdk, instance_env(exec_server, instance.base))
    assert done.returncode == 1
    assert "Error response received from instance metadata service" in done.stderr


def test_js_sdk_gets_the_role_credentials_from_the_dedicated_endpoint(
    js_sdk: Path, exec_server: RoleportServer, instance: Instance
) -> None:
    dedicated = dedicated_endpoint(exec_server, instance.id).json()["Endpoint"]
    found = run_js(js_sdk, instance_env(exec_server, dedicated))
    served = get(dedicated, CREDENTIALS + str(instance.role)).json()
    assert (found["accessKeyId"], found["expiration"]) == (
        served["AccessKeyId"],
        served["Expiration"].replace("Z", ".000Z"),
    )


def test_js_sdk_calls_sts_as_the_instance_role_under_exec(
    js_sdk: Path, exec_server: RoleportServer, instance: Instance
) -> None:
    done = roleport_exec(
        exec_server, instance.id, "env", f"NODE_PATH={js_sdk}", "node", str(JS_SCRIPT), "--caller-identity"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["arn"] == assumed_role(instance)
