"""The `roleport` command as a newcomer meets it: the ready line's `env` command, `env`/`exec` that find the real
server or refuse, configuration errors as one line with exit 2, clean stops, the access log, and private files."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET, free_port, postgres_database, start_server

ROLEPORT = [sys.executable, "-m", "roleport"]


def roleport(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROLEPORT, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@dataclass
class Running:
    """A `roleport serve` started as a user starts it, with its ready line read from its output."""

    process: subprocess.Popen[str]
    ready: str

    def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return self.process.returncode, err

    @property
    def env_command(self) -> list[str]:
        """The command the ready line hands out inside `eval "$(...)"`."""
        inner = self.ready.split('eval "$(', 1)[1].rsplit(')"', 1)[0]
        return shlex.split(inner)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Running] = []

    def start(*args: str, cwd: Path = tmp_path) -> Running:
        process = subprocess.Popen(
            [*ROLEPORT, "serve", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        ready = process.stdout.readline()  # blocks until the server says it is ready (or exits)
        if "ready on" not in ready:
            process.kill()
            raise AssertionError(f"no ready line: {ready!r} {process.communicate()[1]}")
        running = Running(process, ready.strip())
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate()


def exports(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0]
    return found


def caller(env_output: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(exports(env_output), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    args = ["aws", "sts", "get-caller-identity", "--query", "Arn", "--output", "text"]
    done = subprocess.run(args, env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_ready_line_env_reproduces_port_and_keys_and_port_zero_is_the_real_port(serve: Any, tmp_path: Path) -> None:
    running = serve("--port", "0", "--root-access-key", "test", "--root-secret-key", "test")
    port = int(running.ready.split("ready on http://127.0.0.1:", 1)[1].split(" ", 1)[0])
    assert port > 0
    printed = roleport(*running.env_command[1:], cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert exports(printed.stdout)["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
    assert exports(printed.stdout)["AWS_ACCESS_KEY_ID"] == "test"
    assert caller(printed.stdout) == "arn:aws:iam::123456789012:root"
    # From the data dir alone (the server's file), and from another folder with the same command.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plain = roleport("env", "--data-dir", str(tmp_path / ".roleport"), cwd=elsewhere)
    assert exports(plain.stdout) == exports(printed.stdout)
    from_elsewhere = roleport(*running.env_command[1:], cwd=elsewhere)  # no .roleport there: the flags say it all
    assert exports(from_elsewhere.stdout) == exports(printed.stdout), from_elsewhere.stderr


def test_env_and_exec_never_make_keys_and_refuse_without_a_server(serve: Any, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    for command in (["env"], ["exec", "i-0123456789abcdef0", "--", "true"]):
        done = roleport(*command, cwd=nowhere)
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and "no roleport server is running on the data dir .roleport" in done.stderr
    assert list(nowhere.iterdir()) == []  # no data dir, no root keys minted
    port = free_port()
    done = roleport("env", "--port", str(port), cwd=nowhere)
    hint = "start roleport with `roleport serve --data-dir .roleport`"
    assert (done.returncode, done.stderr) == (1, f"roleport: nothing answers at http://127.0.0.1:{port}: {hint}\n")
    running = serve("--port", str(port))  # generated keys, in tmp_path/.roleport
    done = roleport("env", "--port", str(port), cwd=nowhere)
    assert done.returncode == 1 and "no root keys for the roleport server at" in done.stderr
    wrong = roleport("env", "--port", str(port), "--root-access-key", ROOT_KEY, "--root-secret-key", "x", cwd=nowhere)
    assert wrong.returncode == 1 and "refused the root keys test: InvalidClientTokenId" in wrong.stderr
    running.process.kill()  # kill -9 leaves server.json behind: env must not trust it
    running.process.communicate()
    stale = roleport("env", cwd=tmp_path)
    assert stale.returncode == 1 and "has stopped: start roleport with" in stale.stderr


def test_ctrl_c_and_sigterm_stop_cleanly(serve: Any, tmp_path: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        running = serve("--port", "0")
        assert (tmp_path / ".roleport" / "server.json").exists()
        code, err = running.stop(sig)
        assert (code, err) == (0, f"roleport stopped ({sig.name})\n")
        assert not (tmp_path / ".roleport" / "server.json").exists()


def test_access_log_has_method_path_action_status_duration_and_request_id(serve: Any, tmp_path: Path) -> None:
    running = serve("--port", "0", "--access-log")
    env = roleport("env", cwd=tmp_path).stdout
    assert caller(env) == "arn:aws:iam::123456789012:root"
    code, err = running.stop()
    assert code == 0
    lines = [line for line in err.splitlines() if "sts:GetCallerIdentity" in line]
    assert len(lines) == 2  # roleport env's own check, then the aws CLI's call
    fields = lines[-1].split()
    # date time peer method path service:Action status duration request-id
    assert fields[3:7] == ["POST", "/", "sts:GetCallerIdentity", "200"]
    assert fields[7].endswith("ms") and float(fields[7][:-2]) >= 0
    assert len(fields[8]) == 36 and fields[8].count("-") == 4


def test_data_dir_and_database_files_are_private_and_loose_modes_are_tightened_once(serve: Any, tmp_path: Path) -> None:
    data = tmp_path / ".roleport"
    serve("--port", "0").stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("roleport.db", "root-credentials.json"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    running = serve("--port", "0")
    wal = [path for path in data.iterdir() if path.name.startswith("roleport.db-")]
    assert {path.name for path in wal} == {"roleport.db-wal", "roleport.db-shm"}
    assert {stat.S_IMODE(path.stat().st_mode) for path in wal} == {0o600}
    running.stop()
    data.chmod(0o755)
    (data / "roleport.db").chmod(0o644)
    running = serve("--port", "0")
    _, said = running.stop()
    assert "made .roleport (was 0755), roleport.db (was 0644) readable by their owner only" in said
    assert stat.S_IMODE((data / "roleport.db").stat().st_mode) == 0o600
    _, again = serve("--port", "0").stop()
    assert "readable by their owner only" not in again


def _one_line_exit_2(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert expected in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "70000"], "roleport serve: Invalid value for '--port': 70000 is not in the range 0<=x<=65535."),
        (["--port", "-1"], "Invalid value for '--port'"),
        (["--quota", "roles-per-account=lots"], "quota roles-per-account must be a whole number from 1 to"),
        (["--quota", "roles-per-account=0"], "quota roles-per-account must be a whole number from 1 to"),
        (["--quota", "no-such-quota=3"], "unknown quota 'no-such-quota'"),
        (["--database-url", "mysql://root@127.0.0.1/test"], "--database-url: unknown scheme 'mysql'"),
        (["--database-url", "not a url"], "is not a URL"),
        (["--account-id", "12"], "--account-id must be 12 digits"),
        (["--root-access-key", "k"], "--root-access-key and --root-secret-key go together"),
        (["--host", "no-such-host.invalid"], "--host 'no-such-host.invalid' is not an address of this machine"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    _one_line_exit_2(roleport("serve", "--data-dir", str(tmp_path / "d"), *args), expected)


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = roleport("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    _one_line_exit_2(done, f"roleport: port {port} is in use; choose another with --port")


def test_read_only_database_and_broken_key_file_are_one_line(serve: Any, tmp_path: Path) -> None:
    serve("--port", "0").stop()
    database = tmp_path / ".roleport" / "roleport.db"
    read_only = f"sqlite:///file:{database}?mode=ro&uri=true"
    done = roleport("serve", "--port", "0", "--database-url", read_only, cwd=tmp_path)
    _one_line_exit_2(done, "attempt to write a readonly database")
    (tmp_path / ".roleport" / "root-credentials.json").write_text("{not json")
    done = roleport("serve", "--port", "0", cwd=tmp_path)
    _one_line_exit_2(done, "root-credentials.json does not hold a root key pair; remove it to make a new one")
    (tmp_path / "file").write_text("")
    _one_line_exit_2(roleport("serve", "--data-dir", str(tmp_path / "file"), cwd=tmp_path), "file")


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in, root included (the tests may run as root, whom permission bits don't stop)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    else:
        folder.chmod(0o555)
        locked = True
    try:
        (folder / "probe").mkdir()
    except OSError:
        pass
    else:
        locked = False
    if not locked:
        pytest.skip("no way to make a folder unwritable here (chattr +i is refused)")
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_unwritable_data_dir_is_one_line(unwritable: Path, tmp_path: Path) -> None:
    inside = unwritable / "data"
    done = roleport("serve", "--port", "0", "--data-dir", str(inside), cwd=tmp_path)
    _one_line_exit_2(done, f"roleport: cannot create the data dir {inside}: ")
    done = roleport("serve", "--port", "0", "--data-dir", str(unwritable), cwd=tmp_path)
    _one_line_exit_2(done, f"roleport: the data dir {unwritable} is not writable; choose another with --data-dir")
    # env only reads: nothing is made, and it says there is no server there.
    done = roleport("env", "--data-dir", str(inside), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("roleport: no roleport server is running on the data dir")


@pytest.mark.postgresql
def test_postgres_urls_as_users_write_them(serve: Any, tmp_path: Path) -> None:
    for url in postgres_database():
        libpq_style = url.replace("postgresql+psycopg://", "postgres://")
        running = serve("--port", "0", "--database-url", libpq_style)
        assert "(store: postgresql+psycopg://" in running.ready
        assert running.stop()[0] == 0
        missing = url.rpartition("/")[0] + "/roleport_no_such_database"
        done = roleport("serve", "--port", "0", "--database-url", missing, cwd=tmp_path)
        _one_line_exit_2(done, 'database "roleport_no_such_database" does not exist')


def test_serving_beyond_loopback_says_so(serve: Any) -> None:
    running = serve("--host", "0.0.0.0", "--port", "0")
    _, said = running.stop()
    assert "roleport: serving on 0.0.0.0: anyone who can reach port" in said
    assert "instance metadata (its /imds/ paths and the instances' own listeners) stays for 127.0.0.1" in said


# --- roleport exec refuses when code could not run on the instance ----------------------------------------------


@pytest.fixture(scope="module")
def exec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    running = start_server(tmp_path_factory.mktemp("cli") / "data", state_transition_seconds=0)
    yield running
    running.stop()


def _exec(server: RoleportServer, instance_id: str) -> subprocess.CompletedProcess[str]:
    return roleport("exec", "--data-dir", str(server.data_dir), instance_id, "--", "echo", "ran")


def test_exec_refuses_an_instance_that_does_not_exist_is_stopped_or_has_no_profile(exec_server: RoleportServer) -> None:
    iam, ec2 = exec_server.client("iam"), exec_server.client("ec2")
    iam.create_role(RoleName="cli-exec", AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName="cli-exec")
    iam.add_role_to_instance_profile(InstanceProfileName="cli-exec", RoleName="cli-exec")
    launch = {"ImageId": "ami-0abcdef1234567890", "MinCount": 1, "MaxCount": 1}
    bare = ec2.run_instances(**launch)["Instances"][0]["InstanceId"]
    held = ec2.run_instances(**launch, IamInstanceProfile={"Name": "cli-exec"})["Instances"][0]["InstanceId"]

    done = _exec(exec_server, held)
    assert (done.returncode, done.stdout) == (0, "ran\n"), done.stderr

    missing = _exec(exec_server, "i-0123456789abcdef0")
    assert missing.returncode == 1 and "ran" not in missing.stdout
    assert missing.stderr == (
        "roleport: instance i-0123456789abcdef0: InvalidInstanceID.NotFound: "
        "The instance ID 'i-0123456789abcdef0' does not exist\n"
    )
    no_profile = _exec(exec_server, bare)
    assert no_profile.returncode == 1 and "ran" not in no_profile.stdout
    assert f"roleport: instance {bare} has no IAM instance profile, so code on it finds no credentials" in (
        no_profile.stderr
    )
    ec2.stop_instances(InstanceIds=[held])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[held], WaiterConfig={"Delay": 0, "MaxAttempts": 1})
    stopped = _exec(exec_server, held)
    assert stopped.returncode == 1 and "ran" not in stopped.stdout
    assert stopped.stderr == (
        f"roleport: instance {held} is stopped: start it: aws ec2 start-instances --instance-ids {held}\n"
    )
    ec2.terminate_instances(InstanceIds=[held])
    gone = _exec(exec_server, held)
    assert gone.returncode == 1 and f"instance {held} is " in gone.stderr


def test_exec_keys_from_flags_must_be_the_root_pair(exec_server: RoleportServer) -> None:
    args = ["--port", str(exec_server.port), "--root-access-key", ROOT_KEY, "--root-secret-key", ROOT_SECRET]
    done = roleport("exec", *args, "--data-dir", "/nonexistent", "i-0123456789abcdef0", "--", "true")
    assert done.returncode == 1 and "InvalidInstanceID.NotFound" in done.stderr


def test_two_servers_racing_for_one_port_one_wins_and_the_other_says_so(tmp_path: Path) -> None:
    port = str(free_port())
    racers = [
        subprocess.Popen(
            [*ROLEPORT, "serve", "--port", port, "--data-dir", str(tmp_path / f"d{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        lines = [racer.stdout.readline() for racer in racers if racer.stdout is not None]
        ready = [line for line in lines if "ready on" in line]
        assert len(ready) == 1, lines
        loser = racers[lines.index("")]
        assert loser.wait(timeout=30) == 2
        assert loser.communicate()[1] == f"roleport: port {port} is in use; choose another with --port\n"
    finally:
        for racer in racers:
            racer.kill()
            racer.communicate()


def test_ipv6_host_and_a_zero_port_in_the_environment(serve: Any, tmp_path: Path) -> None:
    running = serve("--host", "::1", "--port", "0")
    assert "ready on http://[::1]:" in running.ready
    printed = roleport(*running.env_command[1:], cwd=tmp_path)
    assert exports(printed.stdout)["AWS_ENDPOINT_URL"].startswith("http://[::1]:"), printed.stderr
    assert caller(printed.stdout) == "arn:aws:iam::123456789012:root"
    env = {**os.environ, "ROLEPORT_PORT": "0"}  # as a shell that exported it for `serve` has it
    done = subprocess.run([*ROLEPORT, "env"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert exports(done.stdout) == exports(printed.stdout), done.stderr


def test_env_with_an_unusable_host_is_one_line(tmp_path: Path) -> None:
    done = roleport("env", "--host", "a b", "--port", "5", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("roleport: nothing answers at http://a b:5")


def test_a_metadata_host_that_is_not_this_machines_is_one_line(tmp_path: Path) -> None:
    done = roleport("serve", "--port", "0", "--metadata-host", "no-such-host.invalid", cwd=tmp_path)
    _one_line_exit_2(done, "roleport: --metadata-host 'no-such-host.invalid' is not an address of this machine")


def test_access_log_lines_cannot_be_forged(serve: Any, tmp_path: Path) -> None:
    running = serve("--port", "0", "--access-log")
    url = exports(roleport("env", cwd=tmp_path).stdout)["AWS_ENDPOINT_URL"]
    forged = "GetRole%0A2026-12-08 00:00:00,000 127.0.0.1:1 POST / iam:DeleteRole 200 1.0ms fake"
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(f"{url}/?Action={forged.replace(' ', '%20')}", timeout=10).close()
    _, err = running.stop()
    assert "iam:DeleteRole" not in err.replace("%0A", "\n").split("\n")[0]
    assert not any(line.startswith("2026-12-08 00:00:00,000") for line in err.splitlines())
    assert "GetRole%0A2026-12-08%2000:00:00%2C000" in err
