"""Inline, customer managed and AWS managed policies through boto3 against the real server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of

S3_READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
AWS_CATALOGUE = [
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
    "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
]


@pytest.fixture
def role(iam: Any, name: Any) -> str:
    role_name = name("pol-role")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=EC2_TRUST)
    return role_name


def test_inline_policy_put_get_list_delete(iam: Any, role: str) -> None:
    iam.put_role_policy(RoleName=role, PolicyName="s3-read", PolicyDocument=json.dumps(S3_READ))
    got = iam.get_role_policy(RoleName=role, PolicyName="s3-read")
    assert (got["RoleName"], got["PolicyName"], got["PolicyDocument"]) == (role, "s3-read", S3_READ)
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["s3-read"]
    iam.delete_role_policy(RoleName=role, PolicyName="s3-read")
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert error_of(iam.get_role_policy, RoleName=role, PolicyName="s3-read") == {
        "Code": "NoSuchEntity",
        "Message": "The role policy with name s3-read cannot be found.",
        "Status": 404,
    }


def test_inline_policy_without_resource_is_malformed(iam: Any, role: str) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}
    error = error_of(iam.put_role_policy, RoleName=role, PolicyName="p", PolicyDocument=json.dumps(document))
    assert error == {
        "Code": "MalformedPolicyDocument",
        "Message": "Policy statement must contain resources.",
        "Status": 400,
    }


def test_inline_policy_with_action_lacking_vendor_is_malformed(iam: Any, role: str) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}]}
    error = error_of(iam.put_role_policy, RoleName=role, PolicyName="p", PolicyDocument=json.dumps(document))
    assert error["Message"] == "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."


@pytest.mark.parametrize("arn", AWS_CATALOGUE)
def test_aws_managed_policy_catalogue_has_real_documents(iam: Any, arn: str) -> None:
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["Arn"] == arn and policy["PolicyId"].startswith("ANPA")
    version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert version["IsDefaultVersion"] is True
    assert version["Document"]["Statement"]


def test_ssm_managed_instance_core_allows_ssm_update_instance_information(iam: Any) -> None:
    arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    version = iam.get_policy_version(
        PolicyArn=arn, VersionId=iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    )
    actions = [a for s in version["PolicyVersion"]["Document"]["Statement"] for a in _as_list(s["Action"])]
    assert "ssm:UpdateInstanceInformation" in actions


def test_attach_list_detach_managed_policies(iam: Any, role: str) -> None:
    for arn in AWS_CATALOGUE[:2]:
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    iam.attach_role_policy(RoleName=role, PolicyArn=AWS_CATALOGUE[0])  # attaching twice changes nothing
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert sorted(p["PolicyArn"] for p in attached) == sorted(AWS_CATALOGUE[:2])
    assert {p["PolicyName"] for p in attached} == {
        "AmazonSSMManagedInstanceCore",
        "AmazonEC2ContainerServiceforEC2Role",
    }
    iam.detach_role_policy(RoleName=role, PolicyArn=AWS_CATALOGUE[0])
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [
        AWS_CATALOGUE[1]
    ]
    assert error_of(iam.detach_role_policy, RoleName=role, PolicyArn=AWS_CATALOGUE[0])["Code"] == "NoSuchEntity"


def test_attach_unknown_policy_arn_is_no_such_entity(iam: Any, role: str) -> None:
    arn = "arn:aws:iam::aws:policy/NoSuchPolicyAnywhere"
    assert error_of(iam.attach_role_policy, RoleName=role, PolicyArn=arn) == {
        "Code": "NoSuchEntity",
        "Message": f"Policy {arn} does not exist or is not attachable.",
        "Status": 404,
    }


def test_attach_malformed_arn_is_invalid_input(iam: Any, role: str) -> None:
    error = error_of(iam.attach_role_policy, RoleName=role, PolicyArn="arn:aws:s3:::some-bucket-name")
    assert error["Code"] == "InvalidInput" and error["Status"] == 400


def test_eleventh_managed_policy_is_limit_exceeded(iam: Any, role: str, name: Any) -> None:
    for index in range(10):
        arn = iam.create_policy(PolicyName=name(f"q{index}"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    extra = iam.create_policy(PolicyName=name("q10"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
    error = error_of(iam.attach_role_policy, RoleName=role, PolicyArn=extra)
    assert error == {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PoliciesPerRole: 10", "Status": 409}


def test_customer_policy_lifecycle_with_versions(iam: Any, name: Any) -> None:
    created = iam.create_policy(
        PolicyName=name("cust"), Path="/team/", PolicyDocument=json.dumps(S3_READ), Description="reads"
    )["Policy"]
    arn = created["Arn"]
    assert arn == f"arn:aws:iam::123456789012:policy/team/{name('cust')}"
    assert (created["DefaultVersionId"], created["AttachmentCount"], created["IsAttachable"]) == ("v1", 0, True)
    for _ in range(4):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(S3_READ), SetAsDefault=True)
    assert error_of(iam.create_policy_version, PolicyArn=arn, PolicyDocument=json.dumps(S3_READ))["Code"] == (
        "LimitExceeded"
    )
    listed = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [v["VersionId"] for v in listed] == ["v5", "v4", "v3", "v2", "v1"]
    assert [v["IsDefaultVersion"] for v in listed] == [True, False, False, False, False]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v5"
    assert error_of(iam.delete_policy, PolicyArn=arn)["Code"] == "DeleteConflict"
    assert error_of(iam.delete_policy_version, PolicyArn=arn, VersionId="v5")["Code"] == "DeleteConflict"
    for version in ("v1", "v2", "v3", "v4"):
        iam.delete_policy_version(PolicyArn=arn, VersionId=version)
    iam.delete_policy(PolicyArn=arn)
    assert error_of(iam.get_policy, PolicyArn=arn)["Code"] == "NoSuchEntity"


def test_duplicate_policy_name_is_entity_already_exists(iam: Any, name: Any) -> None:
    iam.create_policy(PolicyName=name("twice"), PolicyDocument=json.dumps(S3_READ))
    error = error_of(iam.create_policy, PolicyName=name("twice"), PolicyDocument=json.dumps(S3_READ))
    assert error["Code"] == "EntityAlreadyExists" and error["Status"] == 409


def test_attached_policy_cannot_be_deleted(iam: Any, role: str, name: Any) -> None:
    arn = iam.create_policy(PolicyName=name("held"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert error_of(iam.delete_policy, PolicyArn=arn) == {
        "Code": "DeleteConflict",
        "Message": "Cannot delete a policy attached to entities.",
        "Status": 409,
    }


def test_list_policies_scope_and_only_attached(iam: Any, role: str, name: Any) -> None:
    arn = iam.create_policy(PolicyName=name("local"), Path=f"/{name('lp')}/", PolicyDocument=json.dumps(S3_READ))[
        "Policy"
    ]["Arn"]
    local = iam.list_policies(Scope="Local", PathPrefix=f"/{name('lp')}/")["Policies"]
    assert [p["Arn"] for p in local] == [arn]
    aws_arns = {p["Arn"] for page in iam.get_paginator("list_policies").paginate(Scope="AWS") for p in page["Policies"]}
    assert set(AWS_CATALOGUE) <= aws_arns and arn not in aws_arns
    iam.attach_role_policy(RoleName=role, PolicyArn=AWS_CATALOGUE[3])
    attached = iam.list_policies(Scope="AWS", OnlyAttached=True)["Policies"]
    assert AWS_CATALOGUE[3] in [p["Arn"] for p in attached]
    assert all(p["AttachmentCount"] >= 1 for p in attached)


def test_aws_managed_policy_cannot_be_deleted(iam: Any) -> None:
    assert error_of(iam.delete_policy, PolicyArn=AWS_CATALOGUE[0])["Status"] in (400, 403)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_policy_attached_to_a_user_counts_and_cannot_be_deleted(iam: Any, name: Any) -> None:
    arn = iam.create_policy(PolicyName=name("user-held"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
    iam.create_user(UserName=name("holder"))
    iam.attach_user_policy(UserName=name("holder"), PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert error_of(iam.delete_policy, PolicyArn=arn)["Code"] == "DeleteConflict"
    assert arn in [p["Arn"] for p in iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]]


def test_list_policy_tags_pages_a_policys_tags(iam: Any, name: Any) -> None:
    tags = [{"Key": f"k{index:02d}", "Value": f"v{index}"} for index in range(5)]
    arn = iam.create_policy(PolicyName=name("tagged"), PolicyDocument=json.dumps(S3_READ), Tags=tags)["Policy"]["Arn"]
    first = iam.list_policy_tags(PolicyArn=arn, MaxItems=3)
    assert first["Tags"] == tags[:3] and first["IsTruncated"] is True
    rest = iam.list_policy_tags(PolicyArn=arn, Marker=first["Marker"])
    assert rest["Tags"] == tags[3:] and rest["IsTruncated"] is False
    paginated = [tag for page in iam.get_paginator("list_policy_tags").paginate(PolicyArn=arn) for tag in page["Tags"]]
    assert paginated == tags


def test_list_policy_tags_of_aws_and_unknown_policies(iam: Any) -> None:
    assert iam.list_policy_tags(PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")["Tags"] == []
    missing = "arn:aws:iam::123456789012:policy/NoSuchPolicy"
    assert error_of(iam.list_policy_tags, PolicyArn=missing) == {
        "Code": "NoSuchEntity",
        "Message": f"Policy {missing} does not exist or is not attachable.",
        "Status": 404,
    }
