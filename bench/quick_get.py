"""GetInstanceProfile over HTTP on roleport (this tree, and optionally a git revision of it) and on the ceiling, in
alternating rounds: a check of the ratio to the ceiling in a minute, without moto or the other scenarios.

Run: python bench/quick_get.py [--base REV] [--rounds 3] [--duration 3] [--no-read-cache]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import servers
from bench_iam import PROFILE, ROLE, TRUST_POLICY, Bench, Options, Report, best_of, call
from loadgen import RawConnection, Signer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="also measure roleport as of this git revision")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--no-read-cache", action="store_true", help="run roleport with --no-read-cache")
    args = parser.parse_args()
    if args.no_read_cache:
        servers.ROLEPORT_FLAGS.append("--no-read-cache")
    client = "wrk" if shutil.which("wrk") else "python"
    opts = Options(args.duration, 0.5, 8, client, 0, 0, 1, 1, None, None)
    bench = Bench(opts, Report())
    workdir = Path(tempfile.mkdtemp(prefix="quick-get-"))
    started: list[servers.Server] = []
    try:
        targets: list[tuple[str, servers.Server]] = [("roleport", servers.roleport(workdir))]
        if args.base:
            here = os.environ.get("PYTHONPATH")
            commit = servers.use_roleport_revision(args.base, workdir)
            base = servers.roleport(workdir)
            servers.ROLEPORT_SOURCE = None
            base.name = f"roleport@{commit[:8]}"
            targets.append((base.name, base))
            if here is not None:  # the base tree must come first on the path
                assert base.env is not None
                base.env["PYTHONPATH"] = os.pathsep.join([str(workdir / f"roleport-{commit[:12]}" / "src"), here])
        targets.append(("ceiling", servers.ceiling(workdir)))
        requests = {}
        for name, server in targets:
            started.append(server.start())
            signer = Signer(server.port)
            if name != "ceiling":
                with RawConnection(server.port) as conn:
                    call(conn, signer.sign("CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=TRUST_POLICY))
                    call(conn, signer.sign("CreateInstanceProfile", InstanceProfileName=PROFILE))
                    call(conn, signer.sign("AddRoleToInstanceProfile", InstanceProfileName=PROFILE, RoleName=ROLE))
            requests[name] = signer.sign("GetInstanceProfile", InstanceProfileName=PROFILE)
        found: dict[str, list] = {name: [] for name, _ in targets}
        for number in range(args.rounds):
            for name, server in targets:
                warm = [requests[name]] if number == 0 else []
                found[name].append(
                    bench.measure("GetInstanceProfile", server, warm, [requests[name]], rounds=1, record=False)
                )
        ceiling = best_of(found["ceiling"]).rps
        for name, _ in targets:
            best = best_of(found[name])
            rounds = ", ".join(f"{m.rps:.0f}" for m in found[name])
            print(
                f"{name:20s} {best.rps:8.0f} req/s ({best.rps / ceiling:5.1%} of the ceiling), "
                f"{best.server_cpu_us:5.0f} us server CPU/request, other CPU {best.other_cpu_pct:.0f} %; "
                f"rounds {rounds}"
            )
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
