"""Benchmark roleport's IAM instance-profile API against moto's server and a bare-ASGI ceiling.

Run: python bench/bench_iam.py            (about 5 s a measurement; a few minutes in all)
     python bench/bench_iam.py --quick    (about 2 s a measurement)
See bench/README.md for what is measured and how. Nothing here asserts: it prints figures and targets.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import loadgen
import servers
from loadgen import RawConnection, Result, Signer

BENCH = Path(__file__).resolve().parent
PROFILE = "bench-profile"
ROLE = "bench-role"
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
PAGE = 100


# ---------------------------------------------------------------------------------------------------------------------
# Options and records


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    client: str
    profiles: int
    small: int
    paginator_runs: int
    rounds: int
    roleport_rev: str | None
    output: Path | None
    read_cache: bool = True


@dataclass
class Measurement:
    scenario: str
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float
    server_cpu_us: float  # server CPU time per request (all its threads), microseconds
    client_cpu_pct: float  # the load generator's CPU, as a percentage of one core
    other_cpu_pct: float  # CPU used meanwhile by everything else on the machine, as a percentage of one core
    note: str = ""
    round_rps: list[float] = field(default_factory=list)  # every round's req/s when the best of several is kept


@dataclass
class Report:
    machine: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    loads: list[dict[str, Any]] = field(default_factory=list)
    walks: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, scenario: str, server: str) -> Measurement | None:
        return next((m for m in self.measurements if m.scenario == scenario and m.server == server), None)


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Measuring


class Bench:
    def __init__(self, options: Options, report: Report):
        self.options = options
        self.report = report

    def measure(
        self,
        scenario: str,
        server: servers.Server,
        warmup: list[bytes],
        requests: list[bytes],
        unique: bool = False,
        note: str = "",
        rounds: int | None = None,
        record: bool = True,
    ) -> Measurement:
        """Warm up, then load the server for the set duration with `connections` keep-alive connections.

        unique=False replays the given requests over and over; unique=True sends each at most once (warm-up and
        measurement then need disjoint lists). When one request alone takes so long that `connections` of them
        queued together would take more than a tenth of the duration (moto listing thousands of profiles), the
        request is measured on one connection with the built-in client, which lets the last request finish, rather
        than with wrk, which would cut the queued requests off at the deadline and count none of them."""
        opts = self.options
        server.wait_idle()
        client, connections = opts.client, opts.connections
        if not unique:
            with RawConnection(server.port) as conn:
                began = time.perf_counter()
                conn.request(requests[0])
                alone = time.perf_counter() - began
            if alone * connections > opts.duration / 10:
                client, connections, warmup = "python", 1, []
                note = (note + "; " if note else "") + f"1 connection: one request alone took {alone:.2f} s"
        if warmup:
            feed = loadgen.each_once(warmup) if unique else _cycle(warmup)
            loadgen.run_python(server.port, feed, opts.warmup, connections)
            server.wait_idle()
        done: list[Measurement] = []
        for _ in range(1 if unique or client != opts.client else (rounds or opts.rounds)):
            server.wait_idle()
            cpu_before, machine_before = server.cpu_seconds(), servers.machine_busy_seconds()
            if client == "wrk":
                result = loadgen.run_wrk(server.port, requests, opts.duration, connections, unique=unique)
            else:
                feed = loadgen.each_once(requests) if unique else _cycle(requests)
                result = loadgen.run_python(server.port, feed, opts.duration, connections)
            server_cpu = server.cpu_seconds() - cpu_before
            other_cpu = servers.machine_busy_seconds() - machine_before - server_cpu - result.client_cpu
            if result.exhausted:
                note = (note + "; " if note else "") + "ran out of pre-signed requests"
            done.append(_measurement(scenario, server.name, result, server_cpu, other_cpu, note))
        if any(m.errors for m in done):
            say(f"  !! {scenario} on {server.name}: failed requests ({dict(result.statuses) or 'see wrk'})")
        measurement = best_of(done)
        if record:
            self.report.measurements.append(measurement)
            say(f"  {_line(measurement)}")
        return measurement

    def measure_interleaved(self, jobs: list[tuple[str, servers.Server, bytes, str]]) -> None:
        """Several repeatable requests measured in turn, round after round, keeping each one's fastest round: other
        work on the machine then weighs on all of them alike, which makes them comparable with each other."""
        found: dict[int, list[Measurement]] = {i: [] for i in range(len(jobs))}
        for round_number in range(self.options.rounds):
            for i, (scenario, server, request, note) in enumerate(jobs):
                warmup = [request] if round_number == 0 else []
                found[i].append(self.measure(scenario, server, warmup, [request], note=note, rounds=1, record=False))
        for i in range(len(jobs)):
            measurement = best_of(found[i])
            self.report.measurements.append(measurement)
            say(f"  {_line(measurement)}")


def best_of(rounds: list[Measurement]) -> Measurement:
    """Other work on the machine only ever slows a round down, so the fastest round is the best estimate."""
    measurement = max(rounds, key=lambda m: m.rps)
    if len(rounds) > 1:
        measurement.note += f"; best of {len(rounds)} rounds: " + ", ".join(f"{m.rps:.0f}" for m in rounds)
        measurement.round_rps = [round(m.rps, 1) for m in rounds]
    return measurement


def _cycle(requests: list[bytes]) -> Callable[[], bytes]:
    if len(requests) == 1:
        return loadgen.repeat(requests[0])
    state = {"i": -1}

    def feed() -> bytes:
        state["i"] = (state["i"] + 1) % len(requests)
        return requests[state["i"]]

    return feed


def _measurement(
    scenario: str, server: str, result: Result, server_cpu: float, other_cpu: float, note: str
) -> Measurement:
    return Measurement(
        scenario=scenario,
        server=server,
        rps=result.rps,
        p50_ms=result.p50_us / 1000,
        p99_ms=result.p99_us / 1000,
        requests=result.requests,
        errors=result.errors,
        seconds=result.elapsed,
        server_cpu_us=server_cpu / result.requests * 1e6 if result.requests else 0.0,
        client_cpu_pct=result.client_cpu_share * 100,
        other_cpu_pct=max(0.0, other_cpu) / result.elapsed * 100 if result.elapsed else 0.0,
        note=note,
    )


def _line(m: Measurement) -> str:
    return (
        f"{m.scenario:<34} {m.server:<9} {m.rps:>9.1f} req/s  p50 {m.p50_ms:>8.2f} ms  p99 {m.p99_ms:>8.2f} ms  "
        f"errors {m.errors}  server CPU {m.server_cpu_us:>7.0f} us/req  client CPU {m.client_cpu_pct:.0f}%  "
        f"other CPU {m.other_cpu_pct:.0f}%" + (f"  ({m.note})" if m.note else "")
    )


def call(conn: RawConnection, raw: bytes, expect: str | None = None) -> loadgen.Response:
    """One request that must succeed (and, with expect, whose body must contain that text)."""
    response = conn.request(raw)
    text = response.body.decode(errors="replace")
    if not 200 <= response.status < 300 or (expect is not None and expect not in text):
        raise RuntimeError(f"unexpected answer {response.status} (wanted {expect!r}): {text[:500]}")
    return response


# ---------------------------------------------------------------------------------------------------------------------
# Scenario 1 and 2: GetInstanceProfile and CreateInstanceProfile


def scenario_get_and_create(bench: Bench, workdir: Path) -> None:
    opts = bench.options
    started: list[servers.Server] = []
    try:
        say("\n== starting roleport, moto and the ceiling")
        for make in (servers.roleport, servers.moto, servers.ceiling):
            server = make(workdir)
            began = time.perf_counter()
            started.append(server.start())
            say(f"  {server.name} on 127.0.0.1:{server.port} answered after {time.perf_counter() - began:.1f} s")
        roleport, moto, ceiling = started

        say("\n== GetInstanceProfile of an existing profile holding a role")
        get_rates: dict[str, float] = {}
        for server in (roleport, moto):
            signer = Signer(server.port)
            with RawConnection(server.port) as conn:
                call(conn, signer.sign("CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=TRUST_POLICY))
                call(conn, signer.sign("CreateInstanceProfile", InstanceProfileName=PROFILE))
                call(conn, signer.sign("AddRoleToInstanceProfile", InstanceProfileName=PROFILE, RoleName=ROLE))
                get = signer.sign("GetInstanceProfile", InstanceProfileName=PROFILE)
                sample = call(conn, get, f"<InstanceProfileName>{PROFILE}</InstanceProfileName>")
                if f"<RoleName>{ROLE}</RoleName>" not in sample.body.decode():
                    raise RuntimeError(f"{server.name}: GetInstanceProfile shows no role: {sample.body[:500]!r}")
            note = f"{len(sample.body)} B body, checked"
            get_rates[server.name] = bench.measure("GetInstanceProfile", server, [get], [get], note=note).rps
        get = Signer(ceiling.port).sign("GetInstanceProfile", InstanceProfileName=PROFILE)
        with RawConnection(ceiling.port) as conn:
            sample = call(conn, get, "<GetInstanceProfileResponse")
        bench.measure("GetInstanceProfile", ceiling, [get], [get], note=f"fixed {len(sample.body)} B body")

        say("\n== CreateInstanceProfile with a new name each time")
        for server in (roleport, moto):
            signer = Signer(server.port)
            with RawConnection(server.port) as conn:
                sample = call(
                    conn,
                    signer.sign("CreateInstanceProfile", InstanceProfileName="bench-new-sample"),
                    "<InstanceProfileName>bench-new-sample</InstanceProfileName>",
                )
            # Warm up with enough distinct names for 1.5x the rate GetInstanceProfile reached, then sign enough for
            # twice the rate the warm-up saw.
            rate = max(get_rates[server.name], 50.0)
            warm = [
                signer.sign("CreateInstanceProfile", InstanceProfileName=f"bench-warm-{i:07d}")
                for i in range(int(rate * opts.warmup * 1.5) + 50)
            ]
            warm_result = loadgen.run_python(server.port, loadgen.each_once(warm), opts.warmup, opts.connections)
            if warm_result.errors:
                raise RuntimeError(f"{server.name}: warm-up creates failed: {dict(warm_result.statuses)}")
            began = time.perf_counter()
            names = [f"bench-new-{i:07d}" for i in range(int(warm_result.rps * opts.duration * 2) + 200)]
            signed = [signer.sign("CreateInstanceProfile", InstanceProfileName=name) for name in names]
            say(f"  {server.name}: signed {len(signed)} distinct requests in {time.perf_counter() - began:.1f} s")
            note = f"{len(sample.body)} B body, checked"
            bench.measure("CreateInstanceProfile", server, [], signed, unique=True, note=note)
            with RawConnection(server.port) as conn:  # what the run created is really there
                # (not the very first name: wrk calls request() once to inspect it and never sends that one)
                name = names[8]
                call(conn, signer.sign("GetInstanceProfile", InstanceProfileName=name), name)
    finally:
        for server in started:
            server.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Scenario 3: listing 1,000 and 10,000 profiles


_MARKER = re.compile(rb"<Marker>([^<]*)</Marker>")
_NAME = re.compile(rb"<InstanceProfileName>")


def load_profiles(bench: Bench, server: servers.Server, start: int, stop: int) -> None:
    signer = Signer(server.port)
    began = time.perf_counter()
    signed = [
        signer.sign("CreateInstanceProfile", InstanceProfileName=f"bench-list-{i:06d}") for i in range(start, stop)
    ]
    signing = time.perf_counter() - began
    server.wait_idle()
    cpu_before = server.cpu_seconds()
    result = loadgen.run_all(server.port, signed, bench.options.connections)
    server_cpu = server.cpu_seconds() - cpu_before
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} of {stop - start} creates failed: {dict(result.statuses)}")
    load = {
        "server": server.name,
        "created": stop - start,
        "total_after": stop,
        "seconds": round(result.elapsed, 3),
        "per_second": round(result.rps, 1),
        "signing_seconds": round(signing, 3),
        "server_cpu_s": round(server_cpu, 2),
    }
    bench.report.loads.append(load)
    say(
        f"  {server.name}: created profiles {start:,}..{stop - 1:,} in {result.elapsed:.2f} s "
        f"({result.rps:,.0f}/s over {bench.options.connections} connections; signing took {signing:.1f} s before)"
    )


def walk(server: servers.Server, total: int) -> tuple[list[str], float, int]:
    """Follow Marker through the whole listing with MaxItems=100: the markers, the seconds, the bytes received."""
    signer = Signer(server.port)
    markers: list[str] = []
    marker: str | None = None
    items = received = 0
    server.wait_idle()
    began = time.perf_counter()
    with RawConnection(server.port) as conn:
        while True:
            params: dict[str, str | int] = {"MaxItems": PAGE}
            if marker is not None:
                params["Marker"] = marker
            body = call(conn, signer.sign("ListInstanceProfiles", **params)).body
            received += len(body)
            items += len(_NAME.findall(body))
            found = _MARKER.search(body)
            if found is None or b"<IsTruncated>true</IsTruncated>" not in body:
                break
            marker = html.unescape(found.group(1).decode())
            markers.append(marker)
    seconds = time.perf_counter() - began
    if items != total:
        raise RuntimeError(f"{server.name}: walking the listing gave {items} profiles, expected {total}")
    return markers, seconds, received


def page_jobs(bench: Bench, server: servers.Server, total: int) -> list[tuple[str, servers.Server, bytes, str]]:
    """Walk the whole listing (timed), then the requests to measure: the first page of 100 and, where the server
    pages at all, the last page (resumed from the marker the walk got for it)."""
    label = f"@{total // 1000}k"
    markers, seconds, received = walk(server, total)
    pages = len(markers) + 1
    bench.report.walks.append(
        {
            "server": server.name,
            "profiles": total,
            "how": "raw HTTP, MaxItems=100, following Marker (signing each page included)",
            "seconds": round(seconds, 3),
            "pages": pages,
            "bytes": received,
        }
    )
    say(f"  {server.name}: raw walk of {total:,} profiles: {pages} page(s), {received / 1e6:.2f} MB, {seconds:.2f} s")
    signer = Signer(server.port)
    first = signer.sign("ListInstanceProfiles", MaxItems=PAGE)
    with RawConnection(server.port) as conn:
        size = len(call(conn, first).body)
    shown = min(PAGE, total) if markers else total
    jobs = [(f"ListInstanceProfiles first page {label}", server, first, f"{shown:,} items, {size:,} B")]
    if markers:
        last = signer.sign("ListInstanceProfiles", MaxItems=PAGE, Marker=markers[-1])
        with RawConnection(server.port) as conn:
            body = call(conn, last).body
        note = f"items {(pages - 1) * PAGE:,}..{total - 1:,}, {len(body):,} B"
        jobs.append((f"ListInstanceProfiles last page {label}", server, last, note))
    return jobs


def paginate_boto3(bench: Bench, server: servers.Server, total: int) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "iam",
        endpoint_url=f"http://127.0.0.1:{server.port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=600),
    )
    times: list[float] = []
    pages = items = 0
    server.wait_idle()
    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    for _ in range(bench.options.paginator_runs):
        pages = items = 0
        began = time.perf_counter()
        for page in client.get_paginator("list_instance_profiles").paginate(PaginationConfig={"PageSize": PAGE}):
            pages += 1
            items += len(page["InstanceProfiles"])
        times.append(time.perf_counter() - began)
    server_cpu = (server.cpu_seconds() - cpu_before) / len(times)
    client_cpu = (time.process_time() - client_before) / len(times)
    if items != total:
        raise RuntimeError(f"{server.name}: the paginator listed {items} profiles, expected {total}")
    median = statistics.median(times)
    bench.report.walks.append(
        {
            "server": server.name,
            "profiles": total,
            "how": "boto3 paginator, PageSize=100",
            "seconds": round(median, 3),
            "all_runs": [round(t, 3) for t in times],
            "pages": pages,
            "server_cpu_s": round(server_cpu, 3),
            "client_cpu_s": round(client_cpu, 3),
        }
    )
    say(
        f"  {server.name}: boto3 paginator over {total:,} profiles: {pages} page(s), median {median:.2f} s of "
        f"{len(times)} run(s) {[round(t, 2) for t in times]}; CPU a listing: server {server_cpu:.2f} s, "
        f"client (botocore) {client_cpu:.2f} s"
    )


def scenario_listing(bench: Bench, workdir: Path) -> None:
    """roleport: one server holding 1,000 profiles and one holding 10,000, their pages measured in turn. moto: one
    server measured at 1,000, then loaded to 10,000 and measured again."""
    opts = bench.options
    started: list[servers.Server] = []
    try:
        say("\n== starting fresh servers for the listing: roleport (twice) and moto")
        for make in (servers.roleport, servers.roleport, servers.moto):
            started.append(make(workdir).start())
        small, large, moto = started
        say("\n== loading instance profiles (CreateInstanceProfile, concurrent)")
        load_profiles(bench, small, 0, opts.small)
        load_profiles(bench, large, 0, opts.profiles)
        load_profiles(bench, moto, 0, opts.small)

        say(f"\n== ListInstanceProfiles, MaxItems={PAGE}: roleport with {opts.small:,} and with {opts.profiles:,}")
        jobs = page_jobs(bench, small, opts.small) + page_jobs(bench, large, opts.profiles)
        bench.measure_interleaved(jobs)
        small.stop()

        for size in (opts.small, opts.profiles):
            if size != opts.small:
                load_profiles(bench, moto, opts.small, size)
            say(f"\n== ListInstanceProfiles, MaxItems={PAGE}: moto with {size:,}")
            for scenario, server, request, note in page_jobs(bench, moto, size):
                bench.measure(scenario, server, [request], [request], note=note)

        say(f"\n== listing all {opts.profiles:,} with boto3's paginator")
        for server in (large, moto):
            paginate_boto3(bench, server, opts.profiles)
    finally:
        for server in started:
            server.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("roleport", "moto", "uvicorn", "starlette", "SQLAlchemy", "botocore", "httptools", "uvloop"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    wrk = "absent"
    if shutil.which("wrk"):
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split("[")[0]
    git = ["git", "-C", str(BENCH.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True, check=False)
    commit = head.stdout.strip() or "unknown"
    if dirty.stdout.strip():
        commit += f" + uncommitted changes in src/ ({len(dirty.stdout.splitlines())} files)"
    return {
        "roleport_commit": commit,
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "wrk": wrk.strip(),
        **versions,
    }


def evaluate(report: Report, opts: Options) -> None:
    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def target(name: str, value: float | None, goal: float, shown: str) -> None:
        met = value is not None and value >= goal
        report.targets.append({"target": name, "value": value, "goal": goal, "met": met, "shown": shown})

    def rps(scenario: str, server: str) -> float | None:
        found = report.find(scenario, server)
        return found.rps if found else None

    get_moto = ratio(rps("GetInstanceProfile", "roleport"), rps("GetInstanceProfile", "moto"))
    get_ceiling = ratio(rps("GetInstanceProfile", "roleport"), rps("GetInstanceProfile", "ceiling"))
    create_moto = ratio(rps("CreateInstanceProfile", "roleport"), rps("CreateInstanceProfile", "moto"))
    target("GetInstanceProfile roleport/moto", get_moto, 15, f"{get_moto or 0:.1f}x (goal >= 15x)")
    target("GetInstanceProfile roleport/ceiling", get_ceiling, 0.40, f"{(get_ceiling or 0) * 100:.0f}% (goal >= 40%)")
    target("CreateInstanceProfile roleport/moto", create_moto, 10, f"{create_moto or 0:.1f}x (goal >= 10x)")

    small, large = f"@{opts.small // 1000}k", f"@{opts.profiles // 1000}k"
    base = rps(f"ListInstanceProfiles first page {small}", "roleport")
    names = [f"{which} {size}" for size in (small, large) for which in ("first", "last")]
    pages = {name: rps(f"ListInstanceProfiles {name.replace(' ', ' page ')}", "roleport") for name in names}
    if base and all(pages.values()):
        worst = min(p for p in pages.values() if p) / base
        shown = f"req/s vs first page {small}: " + ", ".join(f"{n} {(p or 0) / base:.2f}" for n, p in pages.items())
        target(f"a page of {PAGE} costs the same {small} and {large} (slowest page >= 0.8x)", worst, 0.8, shown)

    walks = {w["server"]: w["seconds"] for w in report.walks if w["how"].startswith("boto3")}
    paginator = ratio(walks.get("moto"), walks.get("roleport"))
    target(
        f"boto3 paginator over {opts.profiles:,}: moto time / roleport time",
        paginator,
        10,
        f"{paginator or 0:.1f}x faster (goal >= 10x)",
    )


def listing_notes(report: Report, opts: Options) -> list[str]:
    """What bounds the paginator figure: the server's share and the client's (botocore parsing) share."""
    by = {(w["server"], w["profiles"], w["how"].split(",")[0]): w for w in report.walks}
    notes = []
    raw_r, raw_m = by.get(("roleport", opts.profiles, "raw HTTP")), by.get(("moto", opts.profiles, "raw HTTP"))
    if raw_r and raw_m:
        notes.append(
            f"all {opts.profiles:,} over raw HTTP (no botocore parsing): roleport {raw_r['seconds']:.2f} s "
            f"({raw_r['pages']} pages), moto {raw_m['seconds']:.2f} s (1 page): "
            f"{raw_m['seconds'] / raw_r['seconds']:.1f}x"
        )
    pag_r, pag_m = (
        by.get(("roleport", opts.profiles, "boto3 paginator")),
        by.get(("moto", opts.profiles, "boto3 paginator")),
    )
    if pag_r and pag_m:
        notes.append(
            f"per boto3 listing: server CPU roleport {pag_r['server_cpu_s']:.2f} s vs moto "
            f"{pag_m['server_cpu_s']:.2f} s "
            f"({pag_m['server_cpu_s'] / max(pag_r['server_cpu_s'], 1e-9):.1f}x); the boto3 client's own CPU "
            f"(botocore parsing {opts.profiles:,} profiles) {pag_r['client_cpu_s']:.2f} s with roleport, "
            f"{pag_m['client_cpu_s']:.2f} s with moto, a floor under both wall times"
        )
    return notes


def print_report(report: Report) -> None:
    say("\n" + "=" * 118)
    say("Results")
    say("=" * 118)
    header = (
        f"{'scenario':<34} {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'srv CPU us/req':>14} {'client CPU':>10} {'other CPU':>9}"
    )
    say(header)
    say("-" * len(header))
    for m in report.measurements:
        say(
            f"{m.scenario:<34} {m.server:<9} {m.rps:>9.1f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {m.errors:>6} "
            f"{m.server_cpu_us:>14.0f} {m.client_cpu_pct:>9.0f}% {m.other_cpu_pct:>8.0f}%"
            + (f"  {m.note}" if m.note else "")
        )
    say("\nLoading profiles (CreateInstanceProfile over the API, concurrent)")
    for load in report.loads:
        say(
            f"  {load['server']:<9} profiles {load['total_after'] - load['created']:>6,} -> {load['total_after']:>6,}: "
            f"{load['created']:,} creates in {load['seconds']:.2f} s = {load['per_second']:,.0f}/s"
        )
    say("\nListing everything")
    for w in report.walks:
        extra = f", {w['bytes'] / 1e6:.2f} MB" if "bytes" in w else ""
        if "client_cpu_s" in w:
            extra += f"; CPU a listing: server {w['server_cpu_s']:.2f} s, client {w['client_cpu_s']:.2f} s"
        say(
            f"  {w['server']:<9} {w['profiles']:,} profiles, {w['how']}: {w['seconds']:.2f} s, "
            f"{w['pages']} pages{extra}"
        )
    say("\nRatios and targets (reported, not asserted)")
    for t in report.targets:
        say(f"  [{'met' if t['met'] else 'MISSED':>6}] {t['target']}: {t['shown']}")
    for note in report.notes:
        say(f"  note: {note}")


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=None, help="seconds a measurement (default 5, --quick 2)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 1, --quick 0.5)")
    parser.add_argument("--quick", action="store_true", help="short measurements and one paginator run")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator for the measured runs: wrk (default when installed) or the built-in asyncio client",
    )
    parser.add_argument("--profiles", type=int, default=10_000, help="profiles to list (default 10,000)")
    parser.add_argument("--small", type=int, default=1_000, help="the smaller listing (default 1,000)")
    parser.add_argument("--paginator-runs", type=int, default=None, help="boto3 paginator runs (default 3, quick 1)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="measure each repeatable request this many times and keep the fastest round (default 3, quick 1)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON results (default bench/results/iam-<time>.json)"
    )
    parser.add_argument("--no-output", action="store_true", help="write no JSON file")
    parser.add_argument(
        "--roleport-rev",
        default=None,
        help="benchmark roleport as of this git revision (its src/ exported with git archive) instead of the "
        "installed, possibly uncommitted, tree",
    )
    parser.add_argument(
        "--no-read-cache",
        action="store_true",
        help="run roleport with --no-read-cache: every read runs its query, as a first read does",
    )
    args = parser.parse_args(argv)
    client = args.client
    if client == "auto":
        client = "wrk" if loadgen.wrk_available() else "python"
    elif client == "wrk" and not loadgen.wrk_available():
        parser.error("wrk is not installed (apt-get install -y wrk), use --client python")
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 5.0)
    if client == "wrk" and duration != round(duration):
        duration = max(1.0, float(round(duration)))  # wrk takes whole seconds
    output = None if args.no_output else args.output
    if output is None and not args.no_output:
        output = BENCH / "results" / f"iam-{time.strftime('%Y%m%d-%H%M%S')}.json"
    return Options(
        duration=duration,
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        connections=args.connections,
        client=client,
        profiles=args.profiles,
        small=args.small,
        paginator_runs=args.paginator_runs or (1 if args.quick else 3),
        rounds=args.rounds or (1 if args.quick else 3),
        roleport_rev=args.roleport_rev,
        output=output,
        read_cache=not args.no_read_cache,
    )


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # SIGINT (also when started in the background, where the shell ignores it) and SIGTERM end the run like
    # Ctrl-C does, so the servers are stopped on the way out.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="roleport-bench-"))
    report = Report(machine=machine(), settings={k: str(v) for k, v in asdict(opts).items()})
    if opts.roleport_rev is not None:
        report.machine["roleport_commit"] = servers.use_roleport_revision(opts.roleport_rev, workdir)
    if not opts.read_cache:
        servers.ROLEPORT_FLAGS.append("--no-read-cache")
    say("Machine: " + ", ".join(f"{k}={v}" for k, v in report.machine.items()))
    say(
        f"Settings: {opts.connections} connections, {opts.warmup:g} s warm-up + {opts.duration:g} s a measurement "
        f"(best of {opts.rounds} for repeatable requests), "
        f"client={opts.client}, listing {opts.small:,} and {opts.profiles:,} profiles, "
        f"roleport read cache {'on' if opts.read_cache else 'off'}"
    )
    bench = Bench(opts, report)
    began = time.perf_counter()
    try:
        scenario_get_and_create(bench, workdir)
        scenario_listing(bench, workdir)
    except KeyboardInterrupt:
        say("\ninterrupted; servers stopped")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    evaluate(report, opts)
    report.notes = listing_notes(report, opts)
    print_report(report)
    say(f"\nTotal time {time.perf_counter() - began:.0f} s")
    if opts.output is not None:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text(json.dumps(asdict(report), indent=2) + "\n")
        say(f"Results written to {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
