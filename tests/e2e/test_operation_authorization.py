"""What each operation is authorized against, as its declaration names it (services/registry.py): the calls whose
resource or condition keys were brought in line with the Service Authorization Reference, through real calls signed
as users."""

from __future__ import annotations

import json
from typing import Any

from roleport.testing import RoleportServer as Server
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, client_as, user_with_key

ACCOUNT = "123456789012"
OWN_USER = f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}"
DOCUMENT = json.dumps({"Version": "2012-10-17", "Statement": [allow("s3:GetObject")]})


def _denied(user: str, action: str, resource: str) -> dict[str, Any]:
    return {
        "Code": "AccessDenied",
        "Message": f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} on resource: "
        f"{resource} because no identity-based policy allows the {action} action",
        "Status": 403,
    }


def test_get_access_key_last_used_is_authorized_on_the_keys_owner(server: Server, iam: Any, name: Any) -> None:
    """The reference's resource for iam:GetAccessKeyLastUsed is the user holding the key, which the call does not
    name: a user allowed it on its own ARN reads its own key, and is refused another user's on that user."""
    me, other = name("owner"), name("other")
    creds = user_with_key(server, iam, me, allow("iam:GetAccessKeyLastUsed", OWN_USER))
    theirs = user_with_key(server, iam, other)
    user_iam = client_as(server, "iam", creds)
    assert user_iam.get_access_key_last_used(AccessKeyId=creds["key"])["UserName"] == me
    error = error_of(user_iam.get_access_key_last_used, AccessKeyId=theirs["key"])
    assert error == _denied(me, "iam:GetAccessKeyLastUsed", f"arn:aws:iam::{ACCOUNT}:user/{other}")


def test_list_access_keys_without_a_name_is_authorized_on_the_caller(server: Server, iam: Any, name: Any) -> None:
    """Left out, UserName is the caller's, and so is the resource: a user allowed iam:ListAccessKeys on its own ARN
    lists its own keys, and not another user's."""
    me, other = name("lister"), name("listed")
    creds = user_with_key(server, iam, me, allow("iam:ListAccessKeys", OWN_USER))
    iam.create_user(UserName=other)
    user_iam = client_as(server, "iam", creds)
    assert [k["AccessKeyId"] for k in user_iam.list_access_keys()["AccessKeyMetadata"]] == [creds["key"]]
    error = error_of(user_iam.list_access_keys, UserName=other)
    assert error == _denied(me, "iam:ListAccessKeys", f"arn:aws:iam::{ACCOUNT}:user/{other}")


def test_list_policy_versions_is_authorized_on_the_policy(server: Server, iam: Any, name: Any) -> None:
    mine = iam.create_policy(PolicyName=name("mine"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    theirs = iam.create_policy(PolicyName=name("theirs"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    me = name("versions")
    user_iam = client_as(server, "iam", user_with_key(server, iam, me, allow("iam:ListPolicyVersions", mine)))
    assert [v["VersionId"] for v in user_iam.list_policy_versions(PolicyArn=mine)["Versions"]] == ["v1"]
    assert error_of(user_iam.list_policy_versions, PolicyArn=theirs) == _denied(me, "iam:ListPolicyVersions", theirs)


def test_policy_arn_key_is_set_only_where_the_action_defines_it(server: Server, iam: Any, name: Any) -> None:
    """iam:PolicyARN is a condition key of the attach and detach calls, not of the policy's own reads and writes:
    there the key is absent and a condition on it does not match."""
    arn = iam.create_policy(PolicyName=name("keyed"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    role = name("keyed-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    condition = {"ArnEquals": {"iam:PolicyARN": arn}}
    me = name("keyed-user")
    creds = user_with_key(server, iam, me, allow(["iam:AttachRolePolicy", "iam:GetPolicy"], Condition=condition))
    user_iam = client_as(server, "iam", creds)
    user_iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"][0]["PolicyArn"] == arn
    assert error_of(user_iam.get_policy, PolicyArn=arn) == _denied(me, "iam:GetPolicy", arn)


def test_create_role_carries_its_permissions_boundary_key(server: Server, iam: Any, name: Any) -> None:
    """iam:PermissionsBoundary lets a policy allow creating roles only under a given boundary (the reference's key
    for iam:CreateRole and iam:CreateUser)."""
    boundary = iam.create_policy(PolicyName=name("boundary"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    condition = {"StringEquals": {"iam:PermissionsBoundary": boundary}}
    me = name("bounded")
    statements = (allow(["iam:CreateRole", "iam:CreateUser"], Condition=condition),)
    user_iam = client_as(server, "iam", user_with_key(server, iam, me, *statements))
    created = user_iam.create_role(
        RoleName=name("under"), AssumeRolePolicyDocument=EC2_TRUST, PermissionsBoundary=boundary
    )["Role"]
    assert created["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    free = name("free")
    error = error_of(user_iam.create_role, RoleName=free, AssumeRolePolicyDocument=EC2_TRUST)
    assert error == _denied(me, "iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/{free}")
    user_iam.create_user(UserName=name("under-user"), PermissionsBoundary=boundary)
    assert error_of(user_iam.create_user, UserName=name("free-user"))["Code"] == "AccessDenied"


def test_list_policy_tags_is_authorized_on_the_policy(server: Server, iam: Any, name: Any) -> None:
    mine = iam.create_policy(PolicyName=name("tags-mine"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    theirs = iam.create_policy(PolicyName=name("tags-theirs"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    me = name("tag-reader")
    user_iam = client_as(server, "iam", user_with_key(server, iam, me, allow("iam:ListPolicyTags", mine)))
    assert user_iam.list_policy_tags(PolicyArn=mine)["Tags"] == []
    assert error_of(user_iam.list_policy_tags, PolicyArn=theirs) == _denied(me, "iam:ListPolicyTags", theirs)
