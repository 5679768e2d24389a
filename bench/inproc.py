"""Server time per call, in-process: Pipeline.handle (and the ASGI endpoint around it) on pre-signed requests, no
HTTP and no load generator, so the figures depend little on what else runs on the machine.

Run: python bench/inproc.py [--calls N] [--rounds R] [--profile get|create]

For each scenario the lowest median of R rounds of N calls is printed (other work on the machine can only slow a
round down). `--profile` runs one scenario under cProfile instead and prints the functions with the most own time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport.config import Quotas, Settings
from roleport.pipeline import AwsEndpoint, Pipeline, WireRequest, system_clock
from roleport.store import journal, seed
from roleport.store.db import Store

HOST = "127.0.0.1:7665"
VERSION = "2010-05-08"
TRUST = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},'
    '"Action":"sts:AssumeRole"}]}'
)


def wire(form: dict[str, str]) -> WireRequest:
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials("test", "test"), "iam", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = HOST
    headers["content-length"] = str(len(prepared.body))
    return WireRequest("POST", "/", "", headers, prepared.body)


def build(folder: str) -> Pipeline:
    quotas = Quotas(instance_profiles_per_account=10_000_000)
    settings = Settings(data_dir=Path(folder), root_access_key="test", root_secret_key="test", quotas=quotas)
    propagation = journal.Propagation(system_clock)
    store = Store(settings.store_url, journal=propagation.journal)  # as build_app makes it
    store.create()
    with store.transaction(True, journaled=False) as tx:
        seed.seed(tx, settings.account_id)
    pipeline = Pipeline(settings, store, system_clock)
    for form in (
        {"Action": "CreateRole", "RoleName": "bench-role", "AssumeRolePolicyDocument": TRUST},
        {"Action": "CreateInstanceProfile", "InstanceProfileName": "bench-profile"},
        {"Action": "AddRoleToInstanceProfile", "InstanceProfileName": "bench-profile", "RoleName": "bench-role"},
    ):
        status, body, _ = pipeline.handle(wire({**form, "Version": VERSION}))
        assert status == 200, body
    return pipeline


def asgi_call(endpoint: AwsEndpoint, request: WireRequest) -> Callable[[], None]:
    """One call through the ASGI endpoint with a scope as uvicorn builds it."""
    scope = {
        "type": "http",
        "method": request.method,
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "client": ("127.0.0.1", 50000),
    }
    message = {"type": "http.request", "body": request.body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_message: dict[str, Any]) -> None:
        return None

    def run() -> None:
        coroutine = endpoint(scope, receive, send)
        with contextlib.suppress(StopIteration):
            coroutine.send(None)  # nothing in it really waits

    return run


def median_us(calls: list[Callable[[], Any]]) -> float:
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=("get", "create"), default=None)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument(
        "--just-run",
        choices=("get", "get-asgi", "create"),
        default=None,
        help="only make --calls calls, untimed: for instruction counts (valgrind --tool=callgrind), compared with a "
        "run of other --calls to cancel the start-up",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        pipeline = build(folder)
        endpoint = AwsEndpoint(pipeline, inline=True)
        get = wire({"Action": "GetInstanceProfile", "Version": VERSION, "InstanceProfileName": "bench-profile"})
        status, body, _ = pipeline.handle(get)
        assert status == 200 and b"<RoleName>bench-role</RoleName>" in body, body
        counter = iter(range(10**9))

        def creates(n: int) -> list[Callable[[], Any]]:
            requests = [
                wire({"Action": "CreateInstanceProfile", "Version": VERSION, "InstanceProfileName": f"p-{i}"})
                for i in itertools.islice(counter, n)
            ]
            return [lambda r=r: _ok(pipeline.handle(r)) for r in requests]

        if args.just_run:
            # Creates are signed for the largest run whatever --calls is, so the signing cancels out in the difference.
            if args.just_run == "get":
                calls = [lambda: _ok(pipeline.handle(get))] * args.calls
            elif args.just_run == "get-asgi":
                calls = [asgi_call(endpoint, get)] * args.calls
            else:
                calls = creates(1200)
            for call in calls[: args.calls]:
                call()
            return
        if args.profile:
            calls = [lambda: _ok(pipeline.handle(get))] * args.calls if args.profile == "get" else creates(args.calls)
            median_us([lambda: _ok(pipeline.handle(get))] * 200 if args.profile == "get" else creates(200))
            profiler = cProfile.Profile()
            profiler.enable()
            for call in calls:
                call()
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            return
        scenarios: dict[str, Callable[[], list[Callable[[], Any]]]] = {
            "GetInstanceProfile, Pipeline.handle": lambda: [lambda: _ok(pipeline.handle(get))] * args.calls,
            "GetInstanceProfile, ASGI endpoint": lambda: [asgi_call(endpoint, get)] * args.calls,
            "CreateInstanceProfile, Pipeline.handle": lambda: creates(args.calls),
        }
        best: dict[str, float] = {}
        for make in scenarios.values():
            median_us(make()[:300])  # warm caches
        for _ in range(args.rounds):
            for name, make in scenarios.items():
                calls = make()
                result = median_us(calls)
                best[name] = min(best.get(name, result), result)
        for name, value in best.items():
            print(f"{name:45s} {value:7.1f} us (lowest median of {args.rounds} x {args.calls})")
        pipeline.store.dispose()


def _ok(result: tuple[int, bytes, str]) -> None:
    if result[0] != 200:
        raise RuntimeError(result[1].decode())


if __name__ == "__main__":
    main()
