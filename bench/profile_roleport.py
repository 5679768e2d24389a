"""Where roleport's time goes: run `roleport serve` under cProfile while one benchmark scenario loads it.

Run: python bench/profile_roleport.py get|create|list [--seconds 10] [--top 40] [--save out.prof] [--roleport-rev REV]

The server is started as `python -m cProfile -o FILE -m roleport serve ...` on a temporary SQLite data dir, loaded
with the benchmark's client (8 connections, pre-signed requests) for the set time, stopped with SIGINT, and the
profile is printed per request: the functions with the most cumulative time (the function and what it calls) and
the most own time. cProfile makes Python calls slower, so the microseconds are inflated (about 1.5-2x) but the
shares are a fair map. cProfile sees only the thread it started in, which runs everything with SQLite (roleport
handles SQLite calls on the event loop); sampling profilers (py-spy) misattributed the event loop's idle time to
uvicorn's send() on this machine, so this uses deterministic profiling.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

import loadgen
import servers
from bench_iam import PROFILE, ROLE, TRUST_POLICY, call
from loadgen import RawConnection, Signer


def _where(key: tuple[str, int, str]) -> str:
    path, line, function = key
    for cut in ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        path = path.split(cut)[-1]
    return f"{function} ({path}:{line})" if path != "~" else function


def report(profile: Path, requests: int, top: int) -> None:
    stats = pstats.Stats(str(profile))
    entries = stats.stats  # type: ignore[attr-defined]
    # Per-request functions only (called at least once every other request); start-up work (imports, module code)
    # is left out.
    rows = [
        (key, calls, own, cumulative)
        for key, (_primitive, calls, own, cumulative, _callers) in entries.items()
        if calls >= requests / 2 and not key[0].startswith("<frozen") and "builtins.exec" not in key[2]
    ]
    # The whole of a request as Python sees it: uvicorn's per-request coroutine plus the protocol callbacks.
    outer = ("run_asgi", "data_received", "on_url", "on_header", "on_headers_complete", "on_message_complete")
    total = sum(cum for key, _calls, _own, cum in rows if key[2] in outer and "uvicorn" in key[0])
    if not total:
        total = sum(own for _key, _calls, own, _cum in rows)
    print(f"\n{requests} requests; {total / requests * 1e6:.0f} us of profiled CPU per request (inflated by cProfile)")
    print(f"\n{'cum %':>6} {'own %':>6} {'cum us/req':>10} {'calls/req':>9}  function (by cumulative time)")
    for key, calls, own, cumulative in sorted(rows, key=lambda e: -e[3])[:top]:
        print(
            f"{cumulative / total * 100:6.1f} {own / total * 100:6.1f} {cumulative / requests * 1e6:10.1f} "
            f"{calls / requests:9.1f}  {_where(key)}"
        )
    print(f"\n{'own %':>6} {'own us/req':>10} {'calls/req':>9}  function (by own time)")
    for key, calls, own, _cumulative in sorted(rows, key=lambda e: -e[2])[: top // 2]:
        print(f"{own / total * 100:6.1f} {own / requests * 1e6:10.1f} {calls / requests:9.1f}  {_where(key)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=("get", "create", "list"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--profiles", type=int, default=1000, help="profiles in the store for 'list' (default 1000)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--save", type=Path, default=None, help="keep the raw profile (pstats file) here")
    parser.add_argument("--roleport-rev", default=None, help="profile roleport as of this git revision")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="roleport-profile-"))
    if args.roleport_rev is not None:
        print(f"roleport at {servers.use_roleport_revision(args.roleport_rev, workdir)}")
    profile = workdir / "roleport.prof"
    server = servers.roleport(workdir).start()
    sent = 0
    try:
        # Fill the store on a plain server first, then serve the same data dir under cProfile.
        signer = Signer(server.port)
        with RawConnection(server.port) as conn:
            call(conn, signer.sign("CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=TRUST_POLICY))
            call(conn, signer.sign("CreateInstanceProfile", InstanceProfileName=PROFILE))
            call(conn, signer.sign("AddRoleToInstanceProfile", InstanceProfileName=PROFILE, RoleName=ROLE))
        if args.scenario == "list":
            names = [f"listed-{i:07d}" for i in range(args.profiles)]
            loadgen.run_all(server.port, [signer.sign("CreateInstanceProfile", InstanceProfileName=n) for n in names])
        data_dirs, server.extra_cleanup = server.extra_cleanup, []
        server.stop()
        server.extra_cleanup = data_dirs
        server.command[1:3] = ["-m", "cProfile", "-o", str(profile), "-m", "roleport"]  # same `roleport serve`
        server.start()
        signer = Signer(server.port)
        if args.scenario == "get":
            feed = loadgen.repeat(signer.sign("GetInstanceProfile", InstanceProfileName=PROFILE))
        elif args.scenario == "create":
            names = [f"profiled-{i:07d}" for i in range(int(600 * (args.seconds + 2)))]
            feed = loadgen.each_once([signer.sign("CreateInstanceProfile", InstanceProfileName=n) for n in names])
        else:
            feed = loadgen.repeat(signer.sign("ListInstanceProfiles", MaxItems=100))
        sent += loadgen.run_python(server.port, feed, 1.0, args.connections).requests  # warm-up
        result = loadgen.run_python(server.port, feed, args.seconds, args.connections)
        sent += result.requests
        if result.exhausted:
            print("note: ran out of pre-signed requests before the time was up")
        print(f"{args.scenario}: {result.rps:.0f} req/s under cProfile, errors {result.errors}")
    finally:
        server.stop()  # SIGINT: uvicorn shuts down and cProfile writes the file
    try:
        if args.save is not None:
            shutil.copyfile(profile, args.save)
        report(profile, sent, args.top)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
