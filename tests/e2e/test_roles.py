"""Roles, trust policies and role tags through boto3 against the real server."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of


def test_create_role_returns_role_with_aws_ids(iam: Any, name: Any) -> None:
    role = iam.create_role(
        RoleName=name("app"),
        AssumeRolePolicyDocument=EC2_TRUST,
        Path="/svc/",
        Description="app role",
        MaxSessionDuration=7200,
        Tags=[{"Key": "team", "Value": "red"}],
    )["Role"]
    assert role["Arn"] == f"arn:aws:iam::123456789012:role/svc/{name('app')}"
    assert role["RoleId"].startswith("AROA") and len(role["RoleId"]) == 21
    assert role["AssumeRolePolicyDocument"] == json.loads(EC2_TRUST)
    assert role["Tags"] == [{"Key": "team", "Value": "red"}]
    got = iam.get_role(RoleName=name("app"))["Role"]
    assert (got["Description"], got["MaxSessionDuration"], got["Path"]) == ("app role", 7200, "/svc/")
    assert got["Tags"] == [{"Key": "team", "Value": "red"}]
    assert got["RoleLastUsed"] == {}


def test_role_names_are_unique_ignoring_case(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("admins"), AssumeRolePolicyDocument=EC2_TRUST)
    error = error_of(iam.create_role, RoleName=name("ADMINS"), AssumeRolePolicyDocument=EC2_TRUST)
    assert error == {
        "Code": "EntityAlreadyExists",
        "Message": f"Role with name {name('ADMINS')} already exists.",
        "Status": 409,
    }


def test_get_role_is_case_insensitive_and_keeps_original_case(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("MixedCase"), AssumeRolePolicyDocument=EC2_TRUST)
    assert iam.get_role(RoleName=name("mixedcase"))["Role"]["RoleName"] == name("MixedCase")


def test_get_missing_role_is_no_such_entity(iam: Any, name: Any) -> None:
    assert error_of(iam.get_role, RoleName=name("missing")) == {
        "Code": "NoSuchEntity",
        "Message": f"The role with name {name('missing')} cannot be found.",
        "Status": 404,
    }


def test_trust_policy_that_is_not_json_is_malformed(iam: Any, name: Any) -> None:
    error = error_of(iam.create_role, RoleName=name("bad"), AssumeRolePolicyDocument="{not json")
    assert error == {"Code": "MalformedPolicyDocument", "Message": "This policy contains invalid Json", "Status": 400}
    assert error_of(iam.get_role, RoleName=name("bad"))["Code"] == "NoSuchEntity"


def test_trust_policy_with_resource_is_malformed(iam: Any, name: Any) -> None:
    document = json.loads(EC2_TRUST)
    document["Statement"][0]["Resource"] = "*"
    error = error_of(iam.create_role, RoleName=name("res"), AssumeRolePolicyDocument=json.dumps(document))
    assert error["Code"] == "MalformedPolicyDocument"
    assert error["Message"] == "Has prohibited field Resource"


def test_trust_policy_with_non_sts_action_is_malformed(iam: Any, name: Any) -> None:
    document = json.loads(EC2_TRUST)
    document["Statement"][0]["Action"] = "s3:GetObject"
    error = error_of(iam.create_role, RoleName=name("act"), AssumeRolePolicyDocument=json.dumps(document))
    assert error["Message"] == "AssumeRole policy may only specify STS AssumeRole actions."


def test_max_session_duration_out_of_range_is_validation_error(iam: Any, name: Any) -> None:
    error = error_of(
        iam.create_role, RoleName=name("long"), AssumeRolePolicyDocument=EC2_TRUST, MaxSessionDuration=50000
    )
    assert error["Code"] == "ValidationError" and error["Status"] == 400
    assert "Value '50000' at 'maxSessionDuration' failed to satisfy constraint" in error["Message"]


def test_update_role_changes_description_and_duration(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("upd"), AssumeRolePolicyDocument=EC2_TRUST)
    iam.update_role(RoleName=name("upd"), Description="new words", MaxSessionDuration=3600 * 4)
    role = iam.get_role(RoleName=name("upd"))["Role"]
    assert (role["Description"], role["MaxSessionDuration"]) == ("new words", 14400)


def test_update_assume_role_policy_replaces_trust(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("trust"), AssumeRolePolicyDocument=EC2_TRUST)
    lambda_trust = EC2_TRUST.replace("ec2.amazonaws.com", "lambda.amazonaws.com")
    iam.update_assume_role_policy(RoleName=name("trust"), PolicyDocument=lambda_trust)
    role = iam.get_role(RoleName=name("trust"))["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert error_of(iam.update_assume_role_policy, RoleName=name("trust"), PolicyDocument="[]")["Code"] == (
        "MalformedPolicyDocument"
    )


def test_list_roles_pages_and_omits_tags(iam: Any, name: Any) -> None:
    prefix = f"/{name('lr')}/"
    created = [name(f"role{i}") for i in range(5)]
    for role_name in created:
        iam.create_role(
            RoleName=role_name, Path=prefix, AssumeRolePolicyDocument=EC2_TRUST, Tags=[{"Key": "k", "Value": "v"}]
        )
    pages = list(iam.get_paginator("list_roles").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    listed = [role for page in pages for role in page["Roles"]]
    assert [role["RoleName"] for role in listed] == created
    assert all("Tags" not in role and "RoleLastUsed" not in role for role in listed)


def test_delete_role_refused_while_in_profile_or_with_policies(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("busy"), AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName=name("busy-p"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("busy-p"), RoleName=name("busy"))
    assert error_of(iam.delete_role, RoleName=name("busy")) == {
        "Code": "DeleteConflict",
        "Message": "Cannot delete entity, must remove roles from instance profile first.",
        "Status": 409,
    }
    iam.remove_role_from_instance_profile(InstanceProfileName=name("busy-p"), RoleName=name("busy"))
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    iam.attach_role_policy(RoleName=name("busy"), PolicyArn=arn)
    assert error_of(iam.delete_role, RoleName=name("busy"))["Message"] == (
        "Cannot delete entity, must detach all policies first."
    )
    iam.detach_role_policy(RoleName=name("busy"), PolicyArn=arn)
    iam.put_role_policy(RoleName=name("busy"), PolicyName="inline", PolicyDocument=ALLOW_ALL)
    assert (
        error_of(iam.delete_role, RoleName=name("busy"))["Message"]
        == "Cannot delete entity, must delete policies first."
    )
    iam.delete_role_policy(RoleName=name("busy"), PolicyName="inline")
    iam.delete_role(RoleName=name("busy"))
    assert error_of(iam.get_role, RoleName=name("busy"))["Code"] == "NoSuchEntity"


def test_role_tags_tag_untag_list(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("tags"), AssumeRolePolicyDocument=EC2_TRUST)
    iam.tag_role(RoleName=name("tags"), Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}])
    iam.untag_role(RoleName=name("tags"), TagKeys=["b"])
    assert iam.list_role_tags(RoleName=name("tags"))["Tags"] == [{"Key": "a", "Value": "1"}]


def test_tag_value_with_bad_character_is_validation_error(iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("badtag"), AssumeRolePolicyDocument=EC2_TRUST)
    error = error_of(iam.tag_role, RoleName=name("badtag"), Tags=[{"Key": "ok", "Value": "no*stars"}])
    assert error["Code"] == "ValidationError"
    assert "at 'tags.1.member.value'" in error["Message"]


ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
