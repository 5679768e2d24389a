"""What authorization costs: the median server time of a call by a role session whose role has 10 attached managed
policies, with the authorization step (resource lookup, policy loading, evaluation) on and with it skipped, measured
in-process on one pipeline; the lowest median of several alternating rounds, to damp load from other processes.

Run: python bench/bench_authz.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport.config import Quotas, Settings
from roleport.pipeline import Pipeline, WireRequest, system_clock
from roleport.services.registry import OperationSpec
from roleport.store import seed
from roleport.store.db import Store

HOST = "127.0.0.1:7665"
POLICIES = [
    "AmazonSSMManagedInstanceCore",
    "AmazonEC2ReadOnlyAccess",
    "AmazonS3ReadOnlyAccess",
    "CloudWatchAgentServerPolicy",
    "IAMReadOnlyAccess",
    "AmazonDynamoDBReadOnlyAccess",
    "AWSCloudFormationReadOnlyAccess",
    "AmazonSSMReadOnlyAccess",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKSWorkerNodePolicy",
]


def wire(form: dict[str, str], key: str, secret: str, token: str | None = None, service: str = "iam") -> WireRequest:
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key, secret, token), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = HOST
    return WireRequest("POST", "/", "", headers, prepared.body)


def call(pipeline: Pipeline, form: dict[str, str], **signing: Any) -> str:
    status, body, _ = pipeline.handle(wire(form, **signing))
    if status != 200:
        raise RuntimeError(body.decode())
    return body.decode()


def setup(pipeline: Pipeline) -> dict[str, Any]:
    root = {"key": "test", "secret": "test"}
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
    }
    call(
        pipeline,
        {
            "Action": "CreateRole",
            "Version": "2010-05-08",
            "RoleName": "bench",
            "AssumeRolePolicyDocument": json.dumps(trust),
        },
        **root,
    )
    for name in POLICIES:
        arn = f"arn:aws:iam::aws:policy/{name}"
        call(
            pipeline,
            {"Action": "AttachRolePolicy", "Version": "2010-05-08", "RoleName": "bench", "PolicyArn": arn},
            **root,
        )
    call(pipeline, {"Action": "CreateInstanceProfile", "Version": "2010-05-08", "InstanceProfileName": "bench"}, **root)
    call(pipeline, {"Action": "CreateUser", "Version": "2010-05-08", "UserName": "bench"}, **root)
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
    call(
        pipeline,
        {
            "Action": "PutUserPolicy",
            "Version": "2010-05-08",
            "UserName": "bench",
            "PolicyName": "assume",
            "PolicyDocument": json.dumps(allow),
        },
        **root,
    )
    body = call(pipeline, {"Action": "CreateAccessKey", "Version": "2010-05-08", "UserName": "bench"}, **root)
    user = {
        "key": body.split("<AccessKeyId>")[1].split("<")[0],
        "secret": body.split("<SecretAccessKey>")[1].split("<")[0],
    }
    form = {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "RoleSessionName": "bench",
    }
    body = call(pipeline, form, service="sts", **user)
    return {
        "key": body.split("<AccessKeyId>")[1].split("<")[0],
        "secret": body.split("<SecretAccessKey>")[1].split("<")[0],
        "token": body.split("<SessionToken>")[1].split("<")[0],
    }


def median_us(pipeline: Pipeline, request: WireRequest, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        status, body, _ = pipeline.handle(request)
        times.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(body.decode())
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), root_access_key="test", root_secret_key="test", quotas=Quotas())
        store = Store(settings.store_url)
        store.create()
        with store.transaction(True) as tx:
            seed.seed_aws_managed_policies(tx)
        pipeline = Pipeline(settings, store, system_clock)
        session = setup(pipeline)
        request = wire(
            {"Action": "GetInstanceProfile", "Version": "2010-05-08", "InstanceProfileName": "bench"}, **session
        )
        median_us(pipeline, request, 300)  # warm caches: compiled statements and policies
        original = OperationSpec.authorize_call
        with_authz, without = [], []
        for _ in range(args.rounds):  # alternate, so load from other processes hits both alike
            with_authz.append(median_us(pipeline, request, args.calls))
            OperationSpec.authorize_call = lambda *a, **k: None  # type: ignore[method-assign]
            try:
                without.append(median_us(pipeline, request, args.calls))
            finally:
                OperationSpec.authorize_call = original  # type: ignore[method-assign]
        with_authz, without = min(with_authz), min(without)
        root_request = wire(
            {"Action": "GetInstanceProfile", "Version": "2010-05-08", "InstanceProfileName": "bench"},
            key="test",
            secret="test",
        )
        as_root = median_us(pipeline, root_request, args.calls)
        share = (with_authz - without) / with_authz * 100
        print(f"GetInstanceProfile by a role session with {len(POLICIES)} attached AWS managed policies:")
        print(f"  median server time with authorization:    {with_authz:7.1f} us")
        print(f"  median server time, authorization skipped: {without:6.1f} us")
        print(f"  authorization share of the call:          {share:7.1f} %   (target <= 20 %)")
        print(f"  same call signed by root (no policies):   {as_root:7.1f} us")
        store.dispose()


if __name__ == "__main__":
    main()
