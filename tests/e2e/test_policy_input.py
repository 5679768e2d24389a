"""Policy texts that must be refused as MalformedPolicyDocument (400) at every call that takes one, changing
nothing: a deeply nested JSON text (once a 500 from the decoder's recursion) and an unknown policy Version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, client_as, user_with_key

S3_READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
# A thousand nested lists where the statements go: valid JSON, far deeper than any policy.
DEEP = '{"Version": "2012-10-17", "Statement": ' + "[" * 1000 + "]" * 1000 + "}"
INVALID_JSON = {"Code": "MalformedPolicyDocument", "Message": "This policy contains invalid Json", "Status": 400}
BAD_VERSION = {
    "Code": "MalformedPolicyDocument",
    "Message": "The policy must contain a valid version string",
    "Status": 400,
}


def with_version(document: dict[str, Any] | str, version: Any) -> str:
    parsed = json.loads(document) if isinstance(document, str) else document
    return json.dumps({**parsed, "Version": version})


@pytest.fixture
def role(iam: Any, name: Callable[[str], str]) -> str:
    role_name = name("input-role")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=EC2_TRUST)
    return role_name


@pytest.fixture
def assumable(iam: Any, name: Callable[[str], str]) -> str:
    """A role that trusts its account, so a user allowed sts:AssumeRole may assume it."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    return str(iam.create_role(RoleName=name("assumable"), AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


@pytest.fixture
def sts(server: RoleportServer, iam: Any, name: Callable[[str], str]) -> Any:
    """STS as a user who may assume roles (the root may not)."""
    return client_as(server, "sts", user_with_key(server, iam, name("assumer"), allow("sts:AssumeRole")))


def calls(iam: Any, sts: Any, role: str, user: str, policy_arn: str, role_arn: str) -> dict[str, Any]:
    """Each call that takes a policy text, as a function of the text."""
    return {
        "CreateRole": lambda text: iam.create_role(RoleName=f"{role}-new", AssumeRolePolicyDocument=text),
        "UpdateAssumeRolePolicy": lambda text: iam.update_assume_role_policy(RoleName=role, PolicyDocument=text),
        "PutRolePolicy": lambda text: iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=text),
        "PutUserPolicy": lambda text: iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=text),
        "CreatePolicy": lambda text: iam.create_policy(PolicyName=f"{role}-new", PolicyDocument=text),
        "CreatePolicyVersion": lambda text: iam.create_policy_version(PolicyArn=policy_arn, PolicyDocument=text),
        "AssumeRole": lambda text: sts.assume_role(RoleArn=role_arn, RoleSessionName="session", Policy=text),
        "SimulateCustomPolicy": lambda text: iam.simulate_custom_policy(
            PolicyInputList=[text], ActionNames=["s3:GetObject"]
        ),
        "SimulatePrincipalPolicy": lambda text: iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::123456789012:role/{role}", PolicyInputList=[text], ActionNames=["s3:*"]
        ),
    }


@pytest.fixture
def entry_points(iam: Any, sts: Any, role: str, assumable: str, name: Callable[[str], str]) -> dict[str, Any]:
    user = name("input-user")
    iam.create_user(UserName=user)
    policy_arn = iam.create_policy(PolicyName=name("input-policy"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
    return calls(iam, sts, role, user, policy_arn, assumable)


def state(iam: Any, role: str) -> tuple[Any, ...]:
    got = iam.get_role(RoleName=role)["Role"]
    return got["AssumeRolePolicyDocument"], iam.list_role_policies(RoleName=role)["PolicyNames"]


@pytest.mark.parametrize("operation", list(calls(*[None] * 6)))
def test_deeply_nested_policy_is_malformed_at_every_entry_point(
    iam: Any, role: str, entry_points: dict[str, Any], operation: str
) -> None:
    before = state(iam, role)
    error = error_of(entry_points[operation], DEEP)
    # The simulator reports a policy it cannot read as InvalidInput, with IAM's grammar message.
    expected = {**INVALID_JSON, "Code": "InvalidInput"} if operation.startswith("Simulate") else INVALID_JSON
    assert error == expected
    assert state(iam, role) == before
    assert error_of(iam.get_role, RoleName=f"{role}-new")["Code"] == "NoSuchEntity"


@pytest.mark.parametrize("version", ["2012-10-18", "2099-01-01", "", 2012, ["2012-10-17"]])
def test_unknown_version_in_an_identity_policy_is_malformed(
    iam: Any, role: str, entry_points: dict[str, Any], version: Any
) -> None:
    for operation in ("PutRolePolicy", "CreatePolicy", "CreatePolicyVersion", "AssumeRole"):
        assert error_of(entry_points[operation], with_version(S3_READ, version)) == BAD_VERSION, operation
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []


@pytest.mark.parametrize("version", ["2012-10-18", "2008-10-18", "latest"])
def test_unknown_version_in_a_trust_policy_is_malformed(
    iam: Any, role: str, entry_points: dict[str, Any], version: str
) -> None:
    before = state(iam, role)
    for operation in ("CreateRole", "UpdateAssumeRolePolicy"):
        assert error_of(entry_points[operation], with_version(EC2_TRUST, version)) == BAD_VERSION, operation
    assert state(iam, role) == before


def test_both_known_versions_are_accepted(iam: Any, role: str) -> None:
    for version in ("2008-10-17", "2012-10-17"):
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=with_version(EC2_TRUST, version))
        iam.put_role_policy(RoleName=role, PolicyName=version, PolicyDocument=with_version(S3_READ, version))
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["2008-10-17", "2012-10-17"]
