"""Instructions a request costs inside the running server: `roleport serve` (or the ceiling) under
`valgrind --tool=callgrind`, sent N identical pre-signed GetInstanceProfile requests one after another on one
keep-alive connection, for two values of N; the difference of the two totals over the difference of N is the
per-request figure, start-up and shut-down cancelled. User-space instructions only (the kernel's share, about the
same for every server, is not counted), and the same for the same code and inputs whatever else the machine does.

Run: python bench/server_instructions.py [--calls 300 1300] [--target roleport|ceiling|both] [-- extra serve flags]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_iam import PROFILE, ROLE, TRUST_POLICY, call
from loadgen import RawConnection, Signer
from servers import free_port

HERE = Path(__file__).resolve().parent


def command(target: str, port: int, workdir: Path, extra: list[str]) -> list[str]:
    if target == "ceiling":
        return [sys.executable, str(HERE / "ceiling_app.py"), str(port)]
    return [
        sys.executable, "-m", "roleport", "serve", "--port", str(port), "--data-dir", str(workdir / "data"),
        "--root-access-key", "test", "--root-secret-key", "test", *extra,
    ]  # fmt: skip


def instructions(target: str, calls: int, extra: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="server-ir-") as folder:
        workdir = Path(folder)
        port = free_port()
        out = workdir / "callgrind.out"
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command(target, port, workdir, extra)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=os.environ | {"PYTHONHASHSEED": "0"},
        )
        try:
            signer = Signer(port)
            deadline = time.monotonic() + 300
            while True:
                try:
                    conn = RawConnection(port)
                    conn.request(signer.sign("GetCallerIdentity"))  # any answer: the server is up
                    if target != "ceiling":
                        call(conn, signer.sign("CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=TRUST_POLICY))
                        call(conn, signer.sign("CreateInstanceProfile", InstanceProfileName=PROFILE))
                        call(conn, signer.sign("AddRoleToInstanceProfile", InstanceProfileName=PROFILE, RoleName=ROLE))
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the server did not start under valgrind") from None
                    time.sleep(0.5)
            request = signer.sign("GetInstanceProfile", InstanceProfileName=PROFILE)
            with conn:
                for _ in range(calls):
                    response = conn.request(request)
                    if response.status != 200:
                        raise RuntimeError(response.body.decode())
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=300)
        found = re.search(rb"Collected : (\d+)", errors)
        if found is None:
            raise RuntimeError(errors.decode(errors="replace")[-2000:])
        return int(found[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs=2, default=(300, 1300))
    parser.add_argument("--target", choices=("roleport", "ceiling", "both"), default="both")
    parser.add_argument("extra", nargs="*", help="more `roleport serve` flags (after --)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    few, many = args.calls
    targets = ("roleport", "ceiling") if args.target == "both" else (args.target,)
    for target in targets:
        low = instructions(target, few, args.extra)
        high = instructions(target, many, args.extra)
        print(f"{target:10s} {(high - low) / (many - few):10,.0f} instructions per GetInstanceProfile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
