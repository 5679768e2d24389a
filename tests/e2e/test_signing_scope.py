"""What a SigV4 signature is good for: the body it was made over (no UNSIGNED-PAYLOAD outside S3), and one service
in a region this endpoint answers for (IAM and STS: any region of the partition; EC2: the served region)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import boto3
import pytest
from botocore.config import Config

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET, cli_env
from tests.e2e.helpers import error_of, signed_post

IAM = {"Version": "2010-05-08"}
EC2 = {"Action": "DescribeInstances", "Version": "2016-11-15"}


def code_and_message(body: str) -> tuple[str, str]:
    code = body.split("<Code>", 1)[1].split("</Code>", 1)[0]
    message = body.split("<Message>", 1)[1].split("</Message>", 1)[0]
    return code, message


def client(server: RoleportServer, service: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=region,
        aws_access_key_id=ROOT_KEY,
        aws_secret_access_key=ROOT_SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


def test_a_body_swapped_under_unsigned_payload_is_refused_and_changes_nothing(
    server: RoleportServer, iam: Any, name: Any
) -> None:
    role = name("kept")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    swapped = f"Action=DeleteRole&Version=2010-05-08&RoleName={role}".encode()
    form = {**IAM, "Action": "GetRole", "RoleName": role}
    status, body = signed_post(
        server.endpoint_url, "iam", form, ROOT_KEY, ROOT_SECRET, unsigned_payload=True, sent_body=swapped
    )
    assert status == 403 and code_and_message(body)[0] == "SignatureDoesNotMatch"
    assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role


@pytest.mark.parametrize("service", ["iam", "sts", "ec2"])
def test_an_unsigned_payload_is_refused_even_with_its_own_body(server: RoleportServer, service: str) -> None:
    form = {"iam": {**IAM, "Action": "ListRoles"}, "sts": {"Action": "GetCallerIdentity", "Version": "2011-06-15"}}
    status, body = signed_post(
        server.endpoint_url, service, form.get(service, EC2), ROOT_KEY, ROOT_SECRET, unsigned_payload=True
    )
    expected = ("AuthFailure", 401) if service == "ec2" else ("SignatureDoesNotMatch", 403)
    assert (code_and_message(body)[0], status) == expected


def test_iam_scoped_to_no_region_is_signature_does_not_match(server: RoleportServer) -> None:
    status, body = signed_post(
        server.endpoint_url, "iam", {**IAM, "Action": "ListRoles"}, ROOT_KEY, ROOT_SECRET, region="mars-1"
    )
    assert status == 403
    assert code_and_message(body) == (
        "SignatureDoesNotMatch",
        "Credential should be scoped to a valid region, not 'mars-1'. ",
    )


@pytest.mark.parametrize("scope_service", ["foo", "roleport", "s3"])
def test_iam_scoped_to_another_service_is_signature_does_not_match(server: RoleportServer, scope_service: str) -> None:
    status, body = signed_post(
        server.endpoint_url, scope_service, {**IAM, "Action": "ListRoles"}, ROOT_KEY, ROOT_SECRET
    )
    assert status == 403
    assert code_and_message(body) == (
        "SignatureDoesNotMatch",
        "Credential should be scoped to correct service: 'iam'. ",
    )


def test_both_scope_problems_are_reported_together(server: RoleportServer) -> None:
    form = {**IAM, "Action": "ListRoles"}
    status, body = signed_post(server.endpoint_url, "foo", form, ROOT_KEY, ROOT_SECRET, region="nowhere")
    assert (status, code_and_message(body)[1]) == (
        403,
        "Credential should be scoped to a valid region, not 'nowhere'. "
        "Credential should be scoped to correct service: 'iam'. ",
    )


def test_a_refused_scope_changes_nothing(server: RoleportServer, iam: Any, name: Any) -> None:
    role = name("scoped")
    form = {**IAM, "Action": "CreateRole", "RoleName": role, "AssumeRolePolicyDocument": EC2_TRUST}
    for service, region in (("iam", "mars-1"), ("ec2", "us-east-1")):
        status, _ = signed_post(server.endpoint_url, service, form, ROOT_KEY, ROOT_SECRET, region=region)
        assert status in (400, 403)
    assert error_of(iam.get_role, RoleName=role)["Code"] == "NoSuchEntity"


@pytest.mark.parametrize(("service", "region"), [("ec2", "eu-west-1"), ("ec2", "mars-1"), ("foo", "us-east-1")])
def test_ec2_scoped_to_another_region_or_service_is_auth_failure(
    server: RoleportServer, service: str, region: str
) -> None:
    status, body = signed_post(server.endpoint_url, service, EC2, ROOT_KEY, ROOT_SECRET, region=region)
    assert (status, code_and_message(body)) == (
        401,
        ("AuthFailure", "AWS was not able to validate the provided access credentials"),
    )


def test_boto3_configured_for_another_region_works_where_aws_would_answer(server: RoleportServer) -> None:
    # Pointed at a custom endpoint, botocore signs IAM with the configured region, not us-east-1.
    assert "Roles" in client(server, "iam", "eu-west-1").list_roles()
    assert client(server, "sts", "eu-west-1").get_caller_identity()["Account"] == "123456789012"
    assert client(server, "sts", "ap-southeast-2").get_caller_identity()["Account"] == "123456789012"
    # EC2 is regional: this server answers for us-east-1 only.
    error = error_of(client(server, "ec2", "eu-west-1").describe_instances)
    assert (error["Code"], error["Status"]) == ("AuthFailure", 401)
    assert "Reservations" in client(server, "ec2", "us-east-1").describe_instances()


def test_a_server_for_another_region_serves_ec2_there_only(make_server: Any) -> None:
    server = make_server(region="eu-west-1")
    assert "Reservations" in client(server, "ec2", "eu-west-1").describe_instances()
    assert error_of(client(server, "ec2", "us-east-1").describe_instances)["Code"] == "AuthFailure"
    assert "Roles" in client(server, "iam", "us-east-1").list_roles()
    assert client(server, "sts", "us-east-1").get_caller_identity()["Account"] == "123456789012"


def test_aws_cli_configured_for_another_region(server: RoleportServer) -> None:
    env = {**cli_env(server), "AWS_DEFAULT_REGION": "eu-west-1"}

    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["aws", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)

    listed = aws("iam", "list-roles", "--max-items", "1")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(aws("sts", "get-caller-identity").stdout)["Account"] == "123456789012"
    refused = aws("ec2", "describe-instances")
    assert refused.returncode != 0 and "AuthFailure" in refused.stderr
