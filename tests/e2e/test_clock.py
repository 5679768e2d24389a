"""The server's clock: real by default; with --clock controlled, tests move it through /_roleport/clock."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET
from tests.e2e.helpers import error_of
from tests.e2e.principals import client_as


def clock_call(
    server: RoleportServer, order: dict[str, Any] | bytes | None = None, secret: str = ROOT_SECRET, path: str = "clock"
) -> tuple[int, dict[str, Any]]:
    """GET (or, with an order, POST) /_roleport/clock signed with SigV4 by the root key; an order given as bytes
    is sent as it is."""
    data = order if isinstance(order, bytes) else json.dumps(order).encode() if order is not None else b""
    request = AWSRequest(
        method="POST" if order is not None else "GET", url=f"{server.endpoint_url}/_roleport/{path}", data=data
    )
    SigV4Auth(Credentials(ROOT_KEY, secret), "roleport", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url, data=prepared.body or None, method=request.method, headers=dict(prepared.headers)
    )
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_real_clock_reads_but_does_not_move(server: RoleportServer) -> None:
    status, body = clock_call(server)
    assert status == 200 and body["mode"] == "real"
    status, body = clock_call(server, {"advance_seconds": 60})
    assert status == 400 and body["Error"]["Code"] == "InvalidRequest"


def test_clock_needs_the_root_signature(server: RoleportServer) -> None:
    status, body = clock_call(server, secret="wrong")
    assert status == 403 and body["Error"]["Code"] == "SignatureDoesNotMatch"


# Each would move the clock out of what the server can compute with, or is no amount of time at all.
BAD_CLOCK_ORDERS = [
    b'{"advance_seconds": 1e12}',
    b'{"advance_seconds": 1e400}',
    b'{"advance_seconds": ' + b"9" * 400 + b"}",
    b'{"advance_seconds": NaN}',
    b'{"advance_seconds": Infinity}',
    b'{"advance_seconds": -Infinity}',
    b'{"advance_seconds": -1}',
    b'{"advance_seconds": "60"}',
    b'{"advance_seconds": true}',
    b'{"advance_seconds": null}',
    b'{"set": "9999-12-31T23:59:59Z"}',
    b'{"set": "0001-01-01T00:00:00Z"}',
    b'{"set": "-2026-01-01T00:00:00Z"}',
    b'{"set": 1767225600}',
    b'{"set": "yesterday"}',
    b"{}",
    b"[]",
    b"not json",
]


def test_a_clock_order_out_of_range_or_not_a_time_is_invalid_request_and_moves_nothing(make_server: Any) -> None:
    server = make_server(clock="controlled")
    now = clock_call(server)[1]["now"]
    for order in BAD_CLOCK_ORDERS:
        status, body = clock_call(server, order)
        assert (status, body["Error"]["Code"]) == (400, "InvalidRequest"), order
    assert clock_call(server)[1]["now"] == now
    # Within the range the clock still goes anywhere, back as well as forward.
    assert clock_call(server, {"set": "2030-06-01T00:00:00Z"}) == (
        200,
        {"mode": "controlled", "now": "2030-06-01T00:00:00Z"},
    )
    assert clock_call(server, {"advance_seconds": 86400 * 365})[1]["now"] == "2031-06-01T00:00:00Z"
    assert clock_call(server, {"set": "2020-01-01T00:00:00"})[1]["now"] == "2020-01-01T00:00:00Z"
    for order in (b'{"delay_seconds": NaN}', b'{"delay_seconds": 1e400}', b'{"jitter_seconds": ' + b"9" * 400 + b"}"):
        status, body = clock_call(server, order, path="propagation")
        assert (status, body["Error"]["Code"]) == (400, "InvalidRequest"), order
    assert server.client("iam").list_roles()["Roles"] == []  # the server still answers


def test_controlled_clock_drives_instance_transitions(make_server: Any) -> None:
    server = make_server(clock="controlled", state_transition_seconds=30)
    ec2 = server.client("ec2")
    instance = ec2.run_instances(ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    state = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "pending"  # the clock stands still, so the instance stays pending however long the test takes
    status, body = clock_call(server, {"advance_seconds": 31})
    assert status == 200 and body["mode"] == "controlled"
    state = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "running"


def test_controlled_clock_expires_and_rotates_instance_credentials(make_server: Any) -> None:
    server = make_server(clock="controlled", state_transition_seconds=0)
    iam, ec2 = server.client("iam"), server.client("ec2")
    iam.create_role(RoleName="rotating", AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName="rotating")
    iam.add_role_to_instance_profile(InstanceProfileName="rotating", RoleName="rotating")
    instance = ec2.run_instances(
        ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "rotating"}
    )["Instances"][0]["InstanceId"]
    url = f"{server.endpoint_url}/imds/{instance}/latest/meta-data/iam/security-credentials/rotating"

    def fetch() -> dict[str, str]:
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.loads(response.read())
        return {"key": document["AccessKeyId"], "secret": document["SecretAccessKey"], "token": document["Token"]}

    first = fetch()
    assert client_as(server, "sts", first).get_caller_identity()["Arn"].endswith(f"assumed-role/rotating/{instance}")
    clock_call(server, {"advance_seconds": 7 * 3600})  # past the 6-hour lifetime, in a moment of test time
    assert error_of(client_as(server, "sts", first).get_caller_identity)["Code"] == "ExpiredToken"
    second = fetch()
    assert second["key"] != first["key"]
    assert client_as(server, "sts", second).get_caller_identity()["Arn"].endswith(f"/{instance}")
