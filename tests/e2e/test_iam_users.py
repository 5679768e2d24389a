"""IAM users, user tags and user policies through boto3 and the `aws` CLI against the real server."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import cli_env
from tests.e2e.helpers import error_of

ACCOUNT = "123456789012"
S3_READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.fixture
def user(iam: Any, name: Any) -> str:
    user_name = name("user")
    iam.create_user(UserName=user_name)
    return user_name


def aws(server: RoleportServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aws", *args], capture_output=True, text=True, env=cli_env(server), timeout=60)


# --------------------------------------------------------------------------------------------------------- users


def test_create_user_returns_user_with_aws_ids(iam: Any, name: Any) -> None:
    created = iam.create_user(UserName=name("alice"), Path="/team/", Tags=[{"Key": "team", "Value": "red"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/{name('alice')}"
    assert created["UserId"].startswith("AIDA") and len(created["UserId"]) == 21
    assert (created["UserName"], created["Path"]) == (name("alice"), "/team/")
    assert created["Tags"] == [{"Key": "team", "Value": "red"}]
    got = iam.get_user(UserName=name("alice"))["User"]
    assert got["UserId"] == created["UserId"] and got["CreateDate"] == created["CreateDate"]
    assert got["Tags"] == [{"Key": "team", "Value": "red"}]
    assert "PasswordLastUsed" not in got and "PermissionsBoundary" not in got


def test_user_names_are_unique_ignoring_case(iam: Any, name: Any) -> None:
    iam.create_user(UserName=name("bob"))
    assert error_of(iam.create_user, UserName=name("BOB")) == {
        "Code": "EntityAlreadyExists",
        "Message": f"User with name {name('BOB')} already exists.",
        "Status": 409,
    }


def test_get_user_is_case_insensitive_and_keeps_original_case(iam: Any, name: Any) -> None:
    iam.create_user(UserName=name("MixedCase"))
    assert iam.get_user(UserName=name("mixedcase"))["User"]["UserName"] == name("MixedCase")


def test_get_missing_user_is_no_such_entity(iam: Any, name: Any) -> None:
    assert error_of(iam.get_user, UserName=name("nobody")) == {
        "Code": "NoSuchEntity",
        "Message": f"The user with name {name('nobody')} cannot be found.",
        "Status": 404,
    }


def test_get_user_without_name_as_root_describes_the_account(iam: Any) -> None:
    user = iam.get_user()["User"]
    assert user == {"UserId": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"}


def test_user_name_with_bad_characters_is_validation_error(iam: Any) -> None:
    error = error_of(iam.create_user, UserName="no spaces")
    assert error["Code"] == "ValidationError" and error["Status"] == 400
    assert "Value 'no spaces' at 'userName' failed to satisfy constraint" in error["Message"]


def test_permissions_boundary_is_kept_and_shown_by_get_user(iam: Any, name: Any) -> None:
    iam.create_user(UserName=name("bounded"), PermissionsBoundary=READ_ONLY)
    assert iam.get_user(UserName=name("bounded"))["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": READ_ONLY,
    }


def test_missing_permissions_boundary_is_no_such_entity(iam: Any, name: Any) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:policy/{name('nothing')}"
    assert error_of(iam.create_user, UserName=name("unbounded"), PermissionsBoundary=arn) == {
        "Code": "NoSuchEntity",
        "Message": f"Scope ARN: {arn} does not exist or is not attachable.",
        "Status": 404,
    }
    assert error_of(iam.get_user, UserName=name("unbounded"))["Code"] == "NoSuchEntity"


def test_list_users_pages_by_path_and_omits_tags_and_boundary(iam: Any, name: Any) -> None:
    prefix = f"/{name('lu')}/"
    created = [name(f"u{i}") for i in range(5)]
    for user_name in created:
        iam.create_user(
            UserName=user_name, Path=prefix, PermissionsBoundary=READ_ONLY, Tags=[{"Key": "k", "Value": "v"}]
        )
    pages = list(iam.get_paginator("list_users").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    listed = [user for page in pages for user in page["Users"]]
    assert [user["UserName"] for user in listed] == created
    assert all(set(user) == {"Path", "UserName", "UserId", "Arn", "CreateDate"} for user in listed)


def test_list_users_with_a_marker_it_did_not_make_is_invalid_input(iam: Any) -> None:
    error = error_of(iam.list_users, Marker="not-a-marker")
    assert (error["Code"], error["Status"]) == ("InvalidInput", 400)


def test_update_user_renames_and_moves_keeping_its_id(iam: Any, name: Any) -> None:
    user_id = iam.create_user(UserName=name("old"))["User"]["UserId"]
    key_id = iam.create_access_key(UserName=name("old"))["AccessKey"]["AccessKeyId"]
    iam.update_user(UserName=name("old"), NewUserName=name("new"), NewPath="/moved/")
    user = iam.get_user(UserName=name("new"))["User"]
    assert (user["UserId"], user["Path"]) == (user_id, "/moved/")
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/moved/{name('new')}"
    assert (
        error_of(iam.get_user, UserName=name("old"))["Message"] == f"The user with name {name('old')} cannot be found."
    )
    keys = iam.list_access_keys(UserName=name("new"))["AccessKeyMetadata"]
    assert [(key["AccessKeyId"], key["UserName"]) for key in keys] == [(key_id, name("new"))]
    iam.delete_access_key(UserName=name("new"), AccessKeyId=key_id)


def test_update_user_to_a_taken_name_is_entity_already_exists(iam: Any, name: Any) -> None:
    iam.create_user(UserName=name("first"))
    iam.create_user(UserName=name("second"))
    assert error_of(iam.update_user, UserName=name("first"), NewUserName=name("SECOND")) == {
        "Code": "EntityAlreadyExists",
        "Message": f"User with name {name('SECOND')} already exists.",
        "Status": 409,
    }
    assert iam.get_user(UserName=name("first"))["User"]["UserName"] == name("first")


def test_update_user_may_change_only_the_case_of_its_name(iam: Any, name: Any) -> None:
    iam.create_user(UserName=name("lower"))
    iam.update_user(UserName=name("lower"), NewUserName=name("LOWER"))
    assert iam.get_user(UserName=name("lower"))["User"]["UserName"] == name("LOWER")


def test_update_missing_user_is_no_such_entity(iam: Any, name: Any) -> None:
    error = error_of(iam.update_user, UserName=name("ghost"), NewPath="/x/")
    assert (error["Code"], error["Status"]) == ("NoSuchEntity", 404)


def test_delete_user_refused_while_it_has_keys_or_policies(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    assert error_of(iam.delete_user, UserName=user) == {
        "Code": "DeleteConflict",
        "Message": "Cannot delete entity, must delete access keys first.",
        "Status": 409,
    }
    iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    iam.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=json.dumps(S3_READ))
    assert error_of(iam.delete_user, UserName=user)["Message"] == "Cannot delete entity, must delete policies first."
    iam.delete_user_policy(UserName=user, PolicyName="inline")
    iam.attach_user_policy(UserName=user, PolicyArn=READ_ONLY)
    assert error_of(iam.delete_user, UserName=user)["Message"] == (
        "Cannot delete entity, must detach all policies first."
    )
    iam.detach_user_policy(UserName=user, PolicyArn=READ_ONLY)
    iam.delete_user(UserName=user)
    assert error_of(iam.get_user, UserName=user)["Code"] == "NoSuchEntity"
    assert error_of(iam.delete_user, UserName=user) == {
        "Code": "NoSuchEntity",
        "Message": f"The user with name {user} cannot be found.",
        "Status": 404,
    }


def test_deleted_user_name_can_be_reused_with_a_new_id(iam: Any, name: Any) -> None:
    first = iam.create_user(UserName=name("again"), Tags=[{"Key": "k", "Value": "v"}])["User"]["UserId"]
    iam.delete_user(UserName=name("again"))
    second = iam.create_user(UserName=name("again"))["User"]
    assert second["UserId"] != first and "Tags" not in second


# ---------------------------------------------------------------------------------------------------------- tags


def test_user_tags_tag_untag_list(iam: Any, user: str) -> None:
    iam.tag_user(UserName=user, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}])
    iam.tag_user(UserName=user, Tags=[{"Key": "B", "Value": "3"}])  # keys are case-insensitive: replaces "b"
    assert iam.list_user_tags(UserName=user)["Tags"] == [{"Key": "B", "Value": "3"}, {"Key": "a", "Value": "1"}]
    iam.untag_user(UserName=user, TagKeys=["b"])
    listed = iam.list_user_tags(UserName=user)
    assert (listed["Tags"], listed["IsTruncated"], "Marker" in listed) == ([{"Key": "a", "Value": "1"}], False, False)


def test_list_user_tags_pages(iam: Any, user: str) -> None:
    iam.tag_user(UserName=user, Tags=[{"Key": f"k{i}", "Value": str(i)} for i in range(5)])
    first = iam.list_user_tags(UserName=user, MaxItems=3)
    assert [tag["Key"] for tag in first["Tags"]] == ["k0", "k1", "k2"] and first["IsTruncated"]
    rest = iam.list_user_tags(UserName=user, MaxItems=3, Marker=first["Marker"])
    assert [tag["Key"] for tag in rest["Tags"]] == ["k3", "k4"] and not rest["IsTruncated"]


def test_more_than_fifty_user_tags_is_limit_exceeded(iam: Any, user: str) -> None:
    iam.tag_user(UserName=user, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert error_of(iam.tag_user, UserName=user, Tags=[{"Key": "one-more", "Value": "v"}]) == {
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for TagsPerUser: 50.",
        "Status": 409,
    }
    assert len(iam.list_user_tags(UserName=user)["Tags"]) == 50


def test_duplicate_user_tag_keys_are_invalid_input(iam: Any, user: str) -> None:
    error = error_of(iam.tag_user, UserName=user, Tags=[{"Key": "x", "Value": "1"}, {"Key": "X", "Value": "2"}])
    assert (error["Code"], error["Status"]) == ("InvalidInput", 400)


@pytest.mark.parametrize(
    ("operation", "extra"),
    [
        ("tag_user", {"Tags": [{"Key": "k", "Value": "v"}]}),
        ("untag_user", {"TagKeys": ["k"]}),
        ("list_user_tags", {}),
        ("list_user_policies", {}),
        ("list_attached_user_policies", {}),
        ("list_access_keys", {}),
        ("create_access_key", {}),
    ],
)
def test_operations_on_a_missing_user_are_no_such_entity(iam: Any, name: Any, operation: str, extra: Any) -> None:
    assert error_of(getattr(iam, operation), UserName=name("missing"), **extra) == {
        "Code": "NoSuchEntity",
        "Message": f"The user with name {name('missing')} cannot be found.",
        "Status": 404,
    }


# ------------------------------------------------------------------------------------------------ inline policies


def test_user_inline_policy_put_get_list_delete(iam: Any, user: str) -> None:
    iam.put_user_policy(UserName=user, PolicyName="s3-read", PolicyDocument=json.dumps(S3_READ))
    got = iam.get_user_policy(UserName=user, PolicyName="s3-read")
    assert (got["UserName"], got["PolicyName"], got["PolicyDocument"]) == (user, "s3-read", S3_READ)
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["s3-read"]
    replaced = {**S3_READ, "Statement": [{**S3_READ["Statement"][0], "Action": "s3:ListBucket"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3-read", PolicyDocument=json.dumps(replaced))
    assert iam.get_user_policy(UserName=user, PolicyName="s3-read")["PolicyDocument"] == replaced
    iam.delete_user_policy(UserName=user, PolicyName="s3-read")
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []


@pytest.mark.parametrize("operation", ["get_user_policy", "delete_user_policy"])
def test_missing_user_policy_is_no_such_entity(iam: Any, user: str, operation: str) -> None:
    assert error_of(getattr(iam, operation), UserName=user, PolicyName="absent") == {
        "Code": "NoSuchEntity",
        "Message": "The user policy with name absent cannot be found.",
        "Status": 404,
    }


def test_malformed_user_policy_is_refused(iam: Any, user: str) -> None:
    error = error_of(iam.put_user_policy, UserName=user, PolicyName="bad", PolicyDocument="{not json")
    assert error == {"Code": "MalformedPolicyDocument", "Message": "This policy contains invalid Json", "Status": 400}
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []


def test_user_inline_policies_over_2048_characters_are_limit_exceeded(iam: Any, user: str) -> None:
    def document(size: int) -> str:
        statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/" + "x" * size}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=4)  # white space is free

    iam.put_user_policy(UserName=user, PolicyName="one", PolicyDocument=document(900))
    assert error_of(iam.put_user_policy, UserName=user, PolicyName="two", PolicyDocument=document(1100)) == {
        "Code": "LimitExceeded",
        "Message": f"Maximum policy size of 2048 bytes exceeded for user {user}",
        "Status": 409,
    }
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["one"]


def test_list_user_policies_pages(iam: Any, user: str) -> None:
    for index in range(3):
        iam.put_user_policy(UserName=user, PolicyName=f"p{index}", PolicyDocument=json.dumps(S3_READ))
    pages = list(iam.get_paginator("list_user_policies").paginate(UserName=user, PaginationConfig={"PageSize": 2}))
    assert [page["PolicyNames"] for page in pages] == [["p0", "p1"], ["p2"]]


# ----------------------------------------------------------------------------------------------- managed policies


def test_attach_detach_list_user_policies(iam: Any, user: str, name: Any) -> None:
    arn = iam.create_policy(PolicyName=name("cust"), Path="/mine/", PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=READ_ONLY)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)  # again: no error, no second attachment
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert sorted(attached, key=lambda p: p["PolicyArn"]) == [
        {"PolicyName": name("cust"), "PolicyArn": arn},
        {"PolicyName": "ReadOnlyAccess", "PolicyArn": READ_ONLY},
    ]
    mine = iam.list_attached_user_policies(UserName=user, PathPrefix="/mine/")["AttachedPolicies"]
    assert mine == [{"PolicyName": name("cust"), "PolicyArn": arn}]
    pages = list(
        iam.get_paginator("list_attached_user_policies").paginate(UserName=user, PaginationConfig={"PageSize": 1})
    )
    assert len(pages) == 2
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == [
        {"PolicyName": "ReadOnlyAccess", "PolicyArn": READ_ONLY}
    ]
    iam.detach_user_policy(UserName=user, PolicyArn=READ_ONLY)


def test_detach_unattached_user_policy_is_no_such_entity(iam: Any, user: str) -> None:
    assert error_of(iam.detach_user_policy, UserName=user, PolicyArn=READ_ONLY) == {
        "Code": "NoSuchEntity",
        "Message": f"Policy {READ_ONLY} was not found.",
        "Status": 404,
    }


def test_attach_missing_or_malformed_policy_to_user(iam: Any, user: str, name: Any) -> None:
    missing = f"arn:aws:iam::{ACCOUNT}:policy/{name('none')}"
    assert error_of(iam.attach_user_policy, UserName=user, PolicyArn=missing) == {
        "Code": "NoSuchEntity",
        "Message": f"Policy {missing} does not exist or is not attachable.",
        "Status": 404,
    }
    error = error_of(iam.attach_user_policy, UserName=user, PolicyArn="arn:aws:iam::bad:thing/x")
    assert error == {"Code": "InvalidInput", "Message": "ARN arn:aws:iam::bad:thing/x is not valid.", "Status": 400}


def test_more_than_ten_managed_policies_per_user_is_limit_exceeded(iam: Any, user: str, name: Any) -> None:
    arns = [
        iam.create_policy(PolicyName=name(f"q{i}"), PolicyDocument=json.dumps(S3_READ))["Policy"]["Arn"]
        for i in range(11)
    ]
    for arn in arns[:10]:
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert error_of(iam.attach_user_policy, UserName=user, PolicyArn=arns[10]) == {
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for PoliciesPerUser: 10",
        "Status": 409,
    }
    for arn in arns[:10]:
        iam.detach_user_policy(UserName=user, PolicyArn=arn)


# ------------------------------------------------------------------------------------------------------ the CLI


def test_user_workflow_through_the_aws_cli(server: RoleportServer, name: Any) -> None:
    created = aws(server, "iam", "create-user", "--user-name", name("cli"), "--tags", "Key=team,Value=ops")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name('cli')}"
    attached = aws(server, "iam", "attach-user-policy", "--user-name", name("cli"), "--policy-arn", READ_ONLY)
    assert attached.returncode == 0, attached.stderr
    listed = aws(
        server,
        "iam",
        "list-attached-user-policies",
        "--user-name",
        name("cli"),
        "--query",
        "AttachedPolicies[].PolicyName",
        "--output",
        "text",
    )
    assert listed.stdout.strip() == "ReadOnlyAccess"
    refused = aws(server, "iam", "delete-user", "--user-name", name("cli"))
    assert refused.returncode != 0
    assert (
        "(DeleteConflict) when calling the DeleteUser operation: Cannot delete entity, must detach all policies first."
        in (refused.stderr)
    )
    assert (
        aws(server, "iam", "detach-user-policy", "--user-name", name("cli"), "--policy-arn", READ_ONLY).returncode == 0
    )
    assert aws(server, "iam", "delete-user", "--user-name", name("cli")).returncode == 0
    missing = aws(server, "iam", "get-user", "--user-name", name("cli"))
    assert f"(NoSuchEntity) when calling the GetUser operation: The user with name {name('cli')} cannot be found." in (
        missing.stderr
    )


def test_cli_lists_users_with_its_own_pagination(server: RoleportServer, name: Any) -> None:
    prefix = f"/{name('clipage')}/"
    for index in range(5):
        made = aws(server, "iam", "create-user", "--user-name", name(f"c{index}"), "--path", prefix)
        assert made.returncode == 0, made.stderr
    listed = aws(server, "iam", "list-users", "--path-prefix", prefix, "--page-size", "2")
    assert [u["UserName"] for u in json.loads(listed.stdout)["Users"]] == [name(f"c{i}") for i in range(5)]
