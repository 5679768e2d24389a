"""Benchmark roleport's EC2 IAM instance-profile associations against moto's server.

Run: python bench/bench_ec2.py            (5 s a measurement, best of 3 rounds for the describe calls)
     python bench/bench_ec2.py --quick    (2 s a measurement, 1 round)
For each server: one role with an EC2 trust policy in an instance profile; 1,000 instances launched without a
profile (10 RunInstances of 100) and the profile associated with each (timed: the association load); then
DescribeIamInstanceProfileAssociations with MaxResults=1000 (all 1,000 on one page) and MaxResults=100 (the first
page); then AssociateIamInstanceProfile itself, one pre-signed request per freshly launched instance, each sent
once. The measuring (wrk or the asyncio client, 8 keep-alive connections, server CPU per request) is bench_iam's.
See bench/README.md. Nothing here asserts: it prints figures and ratios.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench_iam
import loadgen
import servers
from bench_iam import ROLE, TRUST_POLICY, Bench, Options, Report, call, say
from botocore.auth import SigV4Auth
from botocore.credentials import Credentials
from loadgen import RawConnection, Signer

EC2_VERSION = "2016-11-15"
PROFILE = "bench-ec2-profile"
# roleport accepts any well-formed AMI id; moto accepts ids it does not know too (it only warns), but its own
# default images are used for it so that nothing depends on that leniency.
ROLEPORT_AMI = "ami-0abcdef1234567890"
MOTO_AMI_FALLBACK = "ami-12c6146b"
LAUNCH_BATCH = 100

_INSTANCE_ID = re.compile(rb"<instanceId>(i-[0-9a-f]+)</instanceId>")
_ASSOCIATION_ID = re.compile(rb"<associationId>(iip-assoc-[0-9a-f]+)</associationId>")
_NEXT_TOKEN = re.compile(rb"<nextToken>([^<]*)</nextToken>")
_IMAGE_ID = re.compile(rb"<imageId>(ami-[0-9a-f]+)</imageId>")


class Ec2Signer(Signer):
    """loadgen's Signer with SigV4 scoped to the ec2 service and the EC2 API version (moto routes on the scope)."""

    def __init__(self, port: int):
        super().__init__(port)
        self.auth = SigV4Auth(Credentials("test", "test"), "ec2", "us-east-1")

    def sign(self, action: str, **params: str | int) -> bytes:
        return super().sign(action, **{"Version": EC2_VERSION, **params})


def start_roleport(workdir: Path) -> servers.Server:
    server = servers.roleport(workdir)
    # Instances are running and associations associated at once, as the brief's command line has it.
    server.command += ["--state-transition-seconds", "0"]
    return server


def setup_profile(server: servers.Server) -> None:
    """A role trusted by EC2 inside an instance profile, through the server's IAM API."""
    signer = Signer(server.port)
    with RawConnection(server.port) as conn:
        call(conn, signer.sign("CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=TRUST_POLICY))
        call(conn, signer.sign("CreateInstanceProfile", InstanceProfileName=PROFILE))
        call(conn, signer.sign("AddRoleToInstanceProfile", InstanceProfileName=PROFILE, RoleName=ROLE))


def pick_ami(server: servers.Server) -> str:
    if server.name == "roleport":
        return ROLEPORT_AMI
    with RawConnection(server.port) as conn:
        response = conn.request(Ec2Signer(server.port).sign("DescribeImages", **{"Owner.1": "amazon"}))
    found = _IMAGE_ID.findall(response.body) if response.status == 200 else []
    return found[0].decode() if found else MOTO_AMI_FALLBACK


def launch(server: servers.Server, ami: str, count: int) -> tuple[list[str], float]:
    """RunInstances in batches of 100 without a profile: the instance ids and the seconds it took."""
    signer = Ec2Signer(server.port)
    ids: list[str] = []
    began = time.perf_counter()
    with RawConnection(server.port) as conn:
        for start in range(0, count, LAUNCH_BATCH):
            size = min(LAUNCH_BATCH, count - start)
            raw = signer.sign("RunInstances", ImageId=ami, InstanceType="t3.micro", MinCount=size, MaxCount=size)
            got = list(dict.fromkeys(m.decode() for m in _INSTANCE_ID.findall(call(conn, raw).body)))
            if len(got) != size:
                raise RuntimeError(f"{server.name}: RunInstances of {size} returned {len(got)} instance ids")
            ids += got
    return ids, time.perf_counter() - began


def sign_associations(server: servers.Server, instance_ids: list[str]) -> list[bytes]:
    signer = Ec2Signer(server.port)
    return [
        signer.sign("AssociateIamInstanceProfile", InstanceId=i, **{"IamInstanceProfile.Name": PROFILE})
        for i in instance_ids
    ]


def count_associations(server: servers.Server, raw: bytes) -> tuple[int, bool, int]:
    """(associations on the page, whether it has a nextToken, body bytes) of one describe call."""
    with RawConnection(server.port) as conn:
        body = call(conn, raw, "<iamInstanceProfileAssociationSet>").body
        for _ in range(3):  # warm, so that Bench.measure's one timed request alone is not the first ones' cost
            call(conn, raw)
    return len(_ASSOCIATION_ID.findall(body)), b"<nextToken>" in body, len(body)


# ---------------------------------------------------------------------------------------------------------------------


def walk_all(server: servers.Server, instances: int, walks: list[dict[str, Any]]) -> None:
    """Every association by MaxResults=1000 and nextToken (signed as it goes), raw HTTP, best of 3 walks."""
    signer = Ec2Signer(server.port)
    times: list[float] = []
    pages = found = 0
    server.wait_idle()
    with RawConnection(server.port) as conn:
        for _ in range(3):
            pages = found = 0
            token = None
            began = time.perf_counter()
            while True:
                params: dict[str, Any] = {"MaxResults": 1000} | ({"NextToken": token} if token else {})
                body = call(conn, signer.sign("DescribeIamInstanceProfileAssociations", **params)).body
                pages += 1
                found += len(_ASSOCIATION_ID.findall(body))
                match = _NEXT_TOKEN.search(body)
                if match is None:
                    break
                token = html.unescape(match.group(1).decode())
            times.append(time.perf_counter() - began)
    if found != instances:
        say(f"  !! {server.name}: the walk found {found:,} associations, expected {instances:,}")
    walks.append({"server": server.name, "pages": pages, "found": found, "seconds": round(min(times), 4)})
    say(
        f"  {server.name}: all {found:,} associations by nextToken with MaxResults=1000: {pages} page(s), "
        f"best of 3 {min(times) * 1000:.0f} ms (signing included)"
    )


def run_server(
    bench: Bench, server: servers.Server, instances: int, loads: list[dict[str, Any]], walks: list[dict[str, Any]]
) -> None:
    opts = bench.options
    name = server.name
    setup_profile(server)
    ami = pick_ami(server)
    ids, seconds = launch(server, ami, instances)
    say(f"  {name}: launched {len(ids):,} instances ({ami}) in {seconds:.2f} s ({len(ids) // LAUNCH_BATCH} calls)")

    # 1. the association load
    signed = sign_associations(server, ids)
    server.wait_idle()
    cpu_before = server.cpu_seconds()
    result = loadgen.run_all(server.port, signed, opts.connections)
    server_cpu = server.cpu_seconds() - cpu_before
    if result.errors:
        raise RuntimeError(f"{name}: {result.errors} of {len(signed)} associations failed: {dict(result.statuses)}")
    load = {
        "server": name,
        "associations": len(signed),
        "seconds": round(result.elapsed, 3),
        "per_second": round(result.rps, 1),
        "p50_ms": round(result.p50_us / 1000, 2),
        "p99_ms": round(result.p99_us / 1000, 2),
        "server_cpu_us": round(server_cpu / len(signed) * 1e6),
        "launch_seconds": round(seconds, 3),
    }
    loads.append(load)
    say(
        f"  {name}: associated {len(signed):,} in {result.elapsed:.2f} s = {result.rps:,.0f}/s over "
        f"{opts.connections} connections (p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
        f"server CPU {load['server_cpu_us']} us each)"
    )

    # 2. describing them. moto 5.2.1 ignores MaxResults here (its handler reads a "MaxItems" parameter that its
    # request parsing never passes on) and pages by 100: its MaxResults=1000 answer is the first 100 and a nextToken,
    # so the whole listing is also walked by nextToken on both servers.
    signer = Ec2Signer(server.port)
    for size in (instances, 100):
        raw = signer.sign("DescribeIamInstanceProfileAssociations", MaxResults=size)
        found, more, length = count_associations(server, raw)
        note = f"{found:,} on the page, {length / 1000:.0f} KB"
        if found == size and more == (size < instances):
            note += ", checked"
        else:
            note += f", nextToken={more}: NOT the {size:,} asked for"
            say(f"  {name}: MaxResults={size} gave {found:,} associations, nextToken={more}")
        bench.measure(f"DescribeIamInstanceProfileAssociations MaxResults={size}", server, [raw], [raw], note=note)
    walk_all(server, instances, walks)

    # 3. AssociateIamInstanceProfile itself, on instances launched for it, each request sent once
    rate = max(result.rps, 20.0)
    warm_count = math.ceil(rate * opts.warmup * 1.5)
    needed = math.ceil((warm_count + rate * opts.duration * 2 + 50) / LAUNCH_BATCH) * LAUNCH_BATCH
    more_ids, seconds = launch(server, ami, needed)
    say(f"  {name}: launched {needed:,} more instances for the measured associations in {seconds:.2f} s")
    signed = sign_associations(server, more_ids)
    note = f"{needed - warm_count:,} distinct requests signed"
    bench.measure("AssociateIamInstanceProfile", server, signed[:warm_count], signed[warm_count:], True, note)
    # (not the first measured one: wrk calls request() once to inspect it and never sends that one)
    filters = {"Filter.1.Name": "instance-id", "Filter.1.Value.1": more_ids[warm_count + 8]}
    check = signer.sign("DescribeIamInstanceProfileAssociations", **filters)
    with RawConnection(server.port) as conn:
        call(conn, check, f"<instanceId>{more_ids[warm_count + 8]}</instanceId>")


def print_table(report: Report, loads: list[dict[str, Any]], walks: list[dict[str, Any]]) -> None:
    say("\n" + "=" * 118)
    say("Results")
    say("=" * 118)
    header = (
        f"{'scenario':<60} {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'srv CPU us/req':>14} {'client CPU':>10} {'other CPU':>9}"
    )
    say(header)
    say("-" * len(header))
    for load in loads:
        say(
            f"{'association load (' + format(load['associations'], ',') + ', each once)':<60} {load['server']:<9} "
            f"{load['per_second']:>9.1f} "
            f"{load['p50_ms']:>8.2f} {load['p99_ms']:>8.2f} {0:>6} {load['server_cpu_us']:>14.0f}"
        )
    for m in report.measurements:
        say(
            f"{m.scenario:<60} {m.server:<9} {m.rps:>9.1f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {m.errors:>6} "
            f"{m.server_cpu_us:>14.0f} {m.client_cpu_pct:>9.0f}% {m.other_cpu_pct:>8.0f}%"
            + (f"  {m.note}" if m.note else "")
        )
    for w in walks:
        say(
            f"{'all ' + format(w['found'], ',') + ' by nextToken, MaxResults=1000 (best of 3)':<60} {w['server']:<9} "
            f"{w['seconds'] * 1000:>9.0f} ms, {w['pages']} page(s)"
        )
    say("\nroleport / moto")
    by_load = {load["server"]: load for load in loads}
    if {"roleport", "moto"} <= by_load.keys():
        r, m = by_load["roleport"], by_load["moto"]
        say(
            f"  {'association load':<60} {r['per_second'] / m['per_second']:>6.1f}x req/s, "
            f"{m['server_cpu_us'] / max(r['server_cpu_us'], 1):>6.1f}x less server CPU"
        )
    by_walk = {w["server"]: w for w in walks}
    if {"roleport", "moto"} <= by_walk.keys():
        ratio = by_walk["moto"]["seconds"] / by_walk["roleport"]["seconds"]
        say(f"  {'all associations by nextToken: moto time / roleport time':<60} {ratio:>6.1f}x")
    for scenario in dict.fromkeys(m.scenario for m in report.measurements):
        r_m, m_m = report.find(scenario, "roleport"), report.find(scenario, "moto")
        if r_m and m_m and m_m.rps and r_m.server_cpu_us:
            say(
                f"  {scenario:<60} {r_m.rps / m_m.rps:>6.1f}x req/s, "
                f"{m_m.server_cpu_us / r_m.server_cpu_us:>6.1f}x less server CPU"
                + ("  (not comparable: moto answered a page of 100)" if "NOT the" in m_m.note else "")
            )


def parse_args(argv: list[str] | None) -> tuple[Options, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s measurements, 0.5 s warm-up, 1 round")
    parser.add_argument("--duration", type=float, default=None, help="seconds a measurement (default 5, --quick 2)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 1, --quick 0.5)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the describe calls (default 3, quick 1)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="measuring client")
    parser.add_argument("--instances", type=int, default=1_000, help="instances associated first (default 1,000)")
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    client = args.client
    if client == "auto":
        client = "wrk" if loadgen.wrk_available() else "python"
    elif client == "wrk" and not loadgen.wrk_available():
        parser.error("wrk is not installed (apt-get install -y wrk), use --client python")
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 5.0)
    if client == "wrk":
        duration = max(1.0, float(round(duration)))  # wrk takes whole seconds
    if args.instances % LAUNCH_BATCH:
        parser.error(f"--instances must be a multiple of {LAUNCH_BATCH}")
    options = Options(
        duration=duration,
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        connections=args.connections,
        client=client,
        profiles=0,
        small=0,
        paginator_runs=0,
        rounds=args.rounds or (1 if args.quick else 3),
        roleport_rev=None,
        output=args.output,
    )
    return options, args.instances


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts, instances = parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="roleport-bench-ec2-"))
    report = Report(machine=bench_iam.machine(), settings={k: str(v) for k, v in asdict(opts).items()})
    say("Machine: " + ", ".join(f"{k}={v}" for k, v in report.machine.items()))
    say(
        f"Settings: {opts.connections} connections, {opts.warmup:g} s warm-up + {opts.duration:g} s a measurement "
        f"(best of {opts.rounds} for the describe calls), client={opts.client}, {instances:,} associations"
    )
    bench = Bench(opts, report)
    loads: list[dict[str, Any]] = []
    walks: list[dict[str, Any]] = []
    began = time.perf_counter()
    started: list[servers.Server] = []
    try:
        for make in (start_roleport, servers.moto):
            server = make(workdir)
            say(f"\n== {server.name}")
            started.append(server.start())
            run_server(bench, server, instances, loads, walks)
            server.stop()
    except KeyboardInterrupt:
        say("\ninterrupted; servers stopped")
        return 130
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(report, loads, walks)
    say(f"\nTotal time {time.perf_counter() - began:.0f} s")
    if opts.output is not None:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text(
            json.dumps({**asdict(report), "loads": loads, "walks": walks}, indent=2, default=str) + "\n"
        )
        say(f"Results written to {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
