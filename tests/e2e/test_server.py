"""The server itself: authentication, routing, health, error envelopes, persistence and concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET
from tests.e2e.helpers import error_of, signed_post


def raw_post(server: RoleportServer, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(server.endpoint_url + "/", data=body, method="POST", headers=headers or {})
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_health_reports_version_services_and_store(server: RoleportServer) -> None:
    health = server.health()
    assert health["services"] == ["iam", "sts", "ec2"]
    assert health["store"] in ("sqlite", "postgresql")
    assert health["version"]


def test_root_caller_identity(sts: Any) -> None:
    identity = sts.get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == (
        "123456789012",
        "arn:aws:iam::123456789012:root",
        "123456789012",
    )


def test_unknown_access_key_is_invalid_client_token_id(server: RoleportServer) -> None:
    iam = server.client("iam", access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    assert error_of(iam.list_roles) == {
        "Code": "InvalidClientTokenId",
        "Message": "The security token included in the request is invalid.",
        "Status": 403,
    }


def test_wrong_secret_is_signature_does_not_match(server: RoleportServer) -> None:
    iam = server.client("iam", access_key=ROOT_KEY, secret_key="not-the-secret")
    error = error_of(iam.list_roles)
    assert (error["Code"], error["Status"]) == ("SignatureDoesNotMatch", 403)
    assert error["Message"].startswith("The request signature we calculated does not match the signature you provided.")


def test_ec2_with_unknown_key_is_auth_failure(server: RoleportServer) -> None:
    ec2 = server.client("ec2", access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    error = error_of(ec2.describe_instances)
    assert (error["Code"], error["Status"]) == ("AuthFailure", 401)


def test_unsigned_request_is_missing_authentication_token(server: RoleportServer) -> None:
    status, body = raw_post(server, b"Action=ListRoles&Version=2010-05-08")
    assert status == 403
    assert "<Code>MissingAuthenticationToken</Code>" in body
    assert "<ErrorResponse" in body and "<RequestId>" in body


def test_unsigned_failed_call_changes_nothing(server: RoleportServer, iam: Any, name: Any) -> None:
    raw_post(server, f"Action=CreateInstanceProfile&Version=2010-05-08&InstanceProfileName={name('x')}".encode())
    assert error_of(iam.get_instance_profile, InstanceProfileName=name("x"))["Code"] == "NoSuchEntity"


def test_unknown_action_is_invalid_action(server: RoleportServer) -> None:
    form = {"Action": "FlyToTheMoon", "Version": "2010-05-08"}
    status, body = signed_post(server.endpoint_url, "iam", form, ROOT_KEY, ROOT_SECRET)
    assert status == 400
    assert "<Code>InvalidAction</Code>" in body
    assert "<Message>The action FlyToTheMoon is not valid for this web service.</Message>" in body


def test_iam_response_envelope_is_aws_shaped(server: RoleportServer) -> None:
    status, body = signed_post(
        server.endpoint_url, "iam", {"Action": "ListRoles", "Version": "2010-05-08"}, ROOT_KEY, ROOT_SECRET
    )
    assert status == 200
    assert body.startswith('<ListRolesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListRolesResult>')
    assert "<ResponseMetadata><RequestId>" in body


def test_ec2_error_envelope_is_aws_shaped(server: RoleportServer) -> None:
    status, body = signed_post(
        server.endpoint_url, "ec2", {"Action": "DescribeVpcs", "Version": "2016-11-15"}, ROOT_KEY, ROOT_SECRET
    )
    assert status == 501
    assert "<Response><Errors><Error><Code>NotImplemented</Code>" in body
    assert "<RequestID>" in body


def test_name_too_long_and_badly_formed_reports_both_constraints(iam: Any) -> None:
    error = error_of(iam.create_instance_profile, InstanceProfileName="x y" * 50)
    assert error["Code"] == "ValidationError" and error["Status"] == 400
    assert error["Message"].startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 128" in error["Message"]
    assert "Member must satisfy regular expression pattern: [\\w+=,.@-]+" in error["Message"]


def test_state_survives_restart(make_server: Any) -> None:
    first = make_server()
    iam = first.client("iam")
    iam.create_role(RoleName="kept", AssumeRolePolicyDocument=EC2_TRUST, Tags=[{"Key": "k", "Value": "v"}])
    iam.create_instance_profile(InstanceProfileName="kept-profile", Path="/p/")
    iam.add_role_to_instance_profile(InstanceProfileName="kept-profile", RoleName="kept")
    iam.attach_role_policy(RoleName="kept", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    before = iam.get_instance_profile(InstanceProfileName="kept-profile")["InstanceProfile"]
    first.stop()
    first.start()
    iam = first.client("iam")
    after = iam.get_instance_profile(InstanceProfileName="kept-profile")["InstanceProfile"]
    assert after == before
    assert iam.list_role_tags(RoleName="kept")["Tags"] == [{"Key": "k", "Value": "v"}]
    attached = iam.list_attached_role_policies(RoleName="kept")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]


def test_root_credentials_are_generated_once_and_private(make_server: Any, tmp_path: Any) -> None:
    data_dir = tmp_path / "gen"
    # No keys given: the server makes its own pair, and reads it back from its data dir on a restart.
    running = RoleportServer(data_dir=data_dir, access_key=None, secret_key=None, log_file=tmp_path / "gen.log")
    env = [sys.executable, "-m", "roleport", "env", "--data-dir", str(data_dir)]
    try:
        for _ in range(2):  # the pair survives a restart
            running.start()
            printed = subprocess.run(env, capture_output=True, text=True, check=True).stdout
            keys = json.loads((data_dir / "root-credentials.json").read_text())
            assert f"export AWS_ACCESS_KEY_ID={keys['AccessKeyId']}" in printed
            assert keys["AccessKeyId"].startswith("AKIA") and len(keys["SecretAccessKey"]) == 40
            assert (data_dir / "root-credentials.json").stat().st_mode & 0o777 == 0o600
            sts = running.client("sts", access_key=keys["AccessKeyId"], secret_key=keys["SecretAccessKey"])
            assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::123456789012:root"
            running.stop()
    finally:
        running.stop()


def test_twenty_concurrent_add_role_calls_have_exactly_one_winner(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam", config=Config(max_pool_connections=20))
    iam.create_instance_profile(InstanceProfileName=name("race"))
    roles = [name(f"racer{i}") for i in range(20)]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)

    def add(role: str) -> str:
        try:
            iam.add_role_to_instance_profile(InstanceProfileName=name("race"), RoleName=role)
            return "ok"
        except iam.exceptions.LimitExceededException:
            return "LimitExceeded"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(add, roles))
    assert outcomes.count("ok") == 1
    assert outcomes.count("LimitExceeded") == 19
    assert len(iam.get_instance_profile(InstanceProfileName=name("race"))["InstanceProfile"]["Roles"]) == 1


def test_two_servers_on_one_database_share_state_and_invariants(make_server: Any, tmp_path: Any) -> None:
    data_dir = tmp_path / "shared"
    one, two = make_server(data_dir=data_dir), make_server(data_dir=data_dir)
    one.client("iam").create_instance_profile(InstanceProfileName="both")
    assert two.client("iam").get_instance_profile(InstanceProfileName="both")["InstanceProfile"]["Arn"]
    assert error_of(two.client("iam").create_instance_profile, InstanceProfileName="BOTH")["Code"] == (
        "EntityAlreadyExists"
    )


@pytest.mark.parametrize("service", ["ec2"])
def test_unimplemented_operation_is_aws_shaped_not_a_crash(server: RoleportServer, service: str) -> None:
    error = error_of(server.client(service).describe_vpcs)
    assert error["Code"] == "NotImplemented" and error["Status"] == 501


def test_adjusted_quota_is_enforced(make_server: Any) -> None:
    small = make_server(quota="instance-profiles-per-account=2")
    iam = small.client("iam")
    iam.create_instance_profile(InstanceProfileName="one")
    iam.create_instance_profile(InstanceProfileName="two")
    error = error_of(iam.create_instance_profile, InstanceProfileName="three")
    assert error == {
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for InstanceProfilesPerAccount: 2.",
        "Status": 409,
    }
