"""The seed workflow, verbatim, through the real `aws` CLI with AWS_ENDPOINT_URL set."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from roleport.testing import RoleportServer
from tests.conftest import cli_env

TRUST = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, '
    '"Action": "sts:AssumeRole"}]}'
)


def aws(server: RoleportServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aws", *args], capture_output=True, text=True, env=cli_env(server), timeout=60)


def test_seed_workflow_through_the_aws_cli(server: RoleportServer, name: Any) -> None:
    role, profile = name("TestRole-1"), name("TestRole-1")
    created = aws(
        server,
        "iam",
        "create-role",
        "--role-name",
        role,
        "--assume-role-policy-document",
        TRUST,
        "--tags",
        "Key=Project,Value=seed",
        "Key=Owner,Value=ops",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["Role"]["RoleName"] == role
    for arn in (
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ):
        attached = aws(server, "iam", "attach-role-policy", "--role-name", role, "--policy-arn", arn)
        assert attached.returncode == 0, attached.stderr
    made = aws(server, "iam", "create-instance-profile", "--instance-profile-name", profile)
    assert made.returncode == 0, made.stderr
    added = aws(server, "iam", "add-role-to-instance-profile", "--instance-profile-name", profile, "--role-name", role)
    assert added.returncode == 0, added.stderr
    arn = aws(
        server,
        "iam",
        "get-instance-profile",
        "--instance-profile-name",
        profile,
        "--output",
        "text",
        "--query",
        "InstanceProfile.Arn",
    )
    assert arn.returncode == 0, arn.stderr
    assert arn.stdout.strip() == f"arn:aws:iam::123456789012:instance-profile/{profile}"
    listed = aws(
        server, "iam", "list-attached-role-policies", "--role-name", role, "--query", "AttachedPolicies[].PolicyName"
    )
    assert sorted(json.loads(listed.stdout)) == ["AmazonEC2ContainerServiceforEC2Role", "AmazonSSMManagedInstanceCore"]


def test_cli_reports_aws_errors_and_exit_code(server: RoleportServer, name: Any) -> None:
    missing = aws(server, "iam", "get-instance-profile", "--instance-profile-name", name("nobody"))
    assert missing.returncode != 0  # 255 from awscli v1, 254 from v2
    expected = f"Instance Profile {name('nobody')} cannot be found."
    assert f"(NoSuchEntity) when calling the GetInstanceProfile operation: {expected}" in missing.stderr


def test_cli_lists_with_its_own_pagination(server: RoleportServer, name: Any) -> None:
    prefix = f"/{name('clipage')}/"
    for index in range(5):
        assert (
            aws(
                server, "iam", "create-instance-profile", "--instance-profile-name", name(f"c{index}"), "--path", prefix
            ).returncode
            == 0
        )
    listed = aws(server, "iam", "list-instance-profiles", "--path-prefix", prefix, "--page-size", "2")
    assert [p["InstanceProfileName"] for p in json.loads(listed.stdout)["InstanceProfiles"]] == [
        name(f"c{index}") for index in range(5)
    ]
