"""Start, watch and stop the servers under test: roleport, moto's server and the ceiling."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark process dies, so no server outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used so far (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    command: list[str]
    health_path: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_cleanup: list[Path] = field(default_factory=list)
    env: dict[str, str] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        self.log_path = self.workdir / f"{self.name}-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.health_path}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s: {self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process, all its threads included."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def wait_idle(self, timeout: float = 300.0) -> float:
        """Wait until the server has stopped using CPU (work left over from an earlier run); the seconds waited."""
        began = time.monotonic()
        last = self.cpu_seconds()
        while time.monotonic() - began < timeout:
            time.sleep(0.25)
            now = self.cpu_seconds()
            if now - last <= 0.02:
                break
            last = now
        return time.monotonic() - began

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for path in self.extra_cleanup:
            shutil.rmtree(path, ignore_errors=True)


# Set by --roleport-rev: a source tree (with roleport/ in it) to run instead of the installed roleport.
ROLEPORT_SOURCE: Path | None = None
# More `roleport serve` flags, e.g. ["--no-read-cache"] (set by --no-read-cache).
ROLEPORT_FLAGS: list[str] = []


def roleport(workdir: Path) -> Server:
    """`roleport serve` on a temporary SQLite data dir. The benchmark creates tens of thousands of instance
    profiles, so IAM's default quota of 1,000 per account is raised with --quota."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="roleport-data-", dir=workdir))
    command = [sys.executable, "-m", "roleport", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    command += ["--root-access-key", "test", "--root-secret-key", "test"]
    command += ["--quota", "instance-profiles-per-account=10000000", *ROLEPORT_FLAGS]
    env = None
    if ROLEPORT_SOURCE is not None:
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROLEPORT_SOURCE), os.environ.get("PYTHONPATH")]))
        }
    return Server("roleport", command, "/_roleport/health", port, workdir, extra_cleanup=[data_dir], env=env)


def use_roleport_revision(revision: str, workdir: Path) -> str:
    """Export src/ of a git revision of this repository into workdir and run roleport from there; the full hash."""
    repo = BENCH.parent
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = workdir / f"roleport-{commit[:12]}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    global ROLEPORT_SOURCE
    ROLEPORT_SOURCE = target / "src"
    return commit


def moto(workdir: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Server("moto", command, "/moto-api/data.json", port, workdir)


def ceiling(workdir: Path) -> Server:
    port = free_port()
    return Server("ceiling", [sys.executable, str(BENCH / "ceiling_app.py"), str(port)], "/", port, workdir)
