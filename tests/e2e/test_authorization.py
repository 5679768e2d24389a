"""IAM policy enforcement for non-root callers, through real calls signed with users' keys and role sessions."""

from __future__ import annotations

import json
from typing import Any

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, client_as, deny, policy, session_credentials, user_with_key

ACCOUNT = "123456789012"


def test_user_without_policies_is_denied_with_aws_message(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("nobody"))
    error = error_of(client_as(server, "iam", creds).list_roles)
    assert error == {
        "Code": "AccessDenied",
        "Message": f"User: arn:aws:iam::{ACCOUNT}:user/{name('nobody')} is not authorized to perform: iam:ListRoles "
        f"on resource: arn:aws:iam::{ACCOUNT}:role/ because no identity-based policy allows the iam:ListRoles action",
        "Status": 403,
    }


def test_user_identity_and_allowed_call(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("reader"), allow("iam:ListRoles"))
    identity = client_as(server, "sts", creds).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name('reader')}"
    assert identity["UserId"].startswith("AIDA")
    assert "Roles" in client_as(server, "iam", creds).list_roles()


def test_attached_managed_policy_allows(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("admin"))
    iam.attach_user_policy(UserName=name("admin"), PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    client_as(server, "iam", creds).create_instance_profile(InstanceProfileName=name("made-by-admin"))
    assert iam.get_instance_profile(InstanceProfileName=name("made-by-admin"))


def test_explicit_deny_beats_allow(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("denied"), allow("iam:*"), deny("iam:CreateRole"))
    user_iam = client_as(server, "iam", creds)
    error = error_of(user_iam.create_role, RoleName=name("x"), AssumeRolePolicyDocument=EC2_TRUST)
    assert error["Code"] == "AccessDenied"
    assert error["Message"].endswith("with an explicit deny in an identity-based policy")
    assert error_of(iam.get_role, RoleName=name("x"))["Code"] == "NoSuchEntity"  # nothing was created
    user_iam.list_roles()


def test_not_action_allows_everything_else(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("notiam"), {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    client_as(server, "ec2", creds).describe_instances()
    assert error_of(client_as(server, "iam", creds).list_roles)["Code"] == "AccessDenied"


def test_resource_scoped_with_policy_variable(server: RoleportServer, iam: Any, name: Any) -> None:
    user = name("var")
    resource = f"arn:aws:iam::{ACCOUNT}:role/${{aws:username}}-*"
    creds = user_with_key(server, iam, user, allow("iam:GetRole", resource))
    iam.create_role(RoleName=f"{user}-mine", AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_role(RoleName=name("theirs"), AssumeRolePolicyDocument=EC2_TRUST)
    user_iam = client_as(server, "iam", creds)
    assert user_iam.get_role(RoleName=f"{user}-mine")["Role"]["RoleName"] == f"{user}-mine"
    assert error_of(user_iam.get_role, RoleName=name("theirs"))["Code"] == "AccessDenied"


def test_request_tag_condition(server: RoleportServer, iam: Any, name: Any) -> None:
    statement = allow("iam:CreateRole", Condition={"StringEquals": {"aws:RequestTag/team": "blue"}})
    creds = user_with_key(server, iam, name("tagger"), statement, allow("iam:TagRole"))
    user_iam = client_as(server, "iam", creds)
    tags = [{"Key": "team", "Value": "red"}]
    assert (
        error_of(user_iam.create_role, RoleName=name("red"), AssumeRolePolicyDocument=EC2_TRUST, Tags=tags)["Code"]
        == "AccessDenied"
    )
    user_iam.create_role(
        RoleName=name("blue"), AssumeRolePolicyDocument=EC2_TRUST, Tags=[{"Key": "team", "Value": "blue"}]
    )


def test_resource_tag_condition(server: RoleportServer, iam: Any, name: Any) -> None:
    statement = allow("iam:GetRole", Condition={"StringEquals": {"aws:ResourceTag/stage": "dev"}})
    creds = user_with_key(server, iam, name("rt"), statement)
    iam.create_role(RoleName=name("dev"), AssumeRolePolicyDocument=EC2_TRUST, Tags=[{"Key": "stage", "Value": "dev"}])
    iam.create_role(RoleName=name("prod"), AssumeRolePolicyDocument=EC2_TRUST, Tags=[{"Key": "stage", "Value": "prod"}])
    user_iam = client_as(server, "iam", creds)
    user_iam.get_role(RoleName=name("dev"))
    assert error_of(user_iam.get_role, RoleName=name("prod"))["Code"] == "AccessDenied"


def test_source_ip_condition(server: RoleportServer, iam: Any, name: Any) -> None:
    inside = allow("iam:ListRoles", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    outside = allow("iam:ListUsers", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    creds = user_with_key(server, iam, name("ip"), inside, outside)
    user_iam = client_as(server, "iam", creds)
    user_iam.list_roles()
    assert error_of(user_iam.list_users)["Code"] == "AccessDenied"


def test_source_ip_is_the_peer_not_a_forwarded_for_header(server: RoleportServer, iam: Any, name: Any) -> None:
    # AWS takes aws:SourceIp from the connection; a header the caller writes must not move it.
    inside = allow("iam:ListRoles", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    outside = allow("iam:ListUsers", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    creds = user_with_key(server, iam, name("forged"), inside, outside)
    user_iam = client_as(server, "iam", creds)

    def forge(request: Any, **_: Any) -> None:
        request.headers["X-Forwarded-For"] = "10.1.2.3"
        request.headers["Forwarded"] = "for=10.1.2.3"

    user_iam.meta.events.register("before-sign.iam.*", forge)
    user_iam.list_roles()
    assert error_of(user_iam.list_users)["Code"] == "AccessDenied"


def test_ec2_denial_is_unauthorized_operation(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("noec2"))
    error = error_of(client_as(server, "ec2", creds).describe_instances)
    assert error["Code"] == "UnauthorizedOperation" and error["Status"] == 403
    assert error["Message"].startswith("You are not authorized to perform this operation. User: ")
    assert "Encoded authorization failure message: " in error["Message"]


def test_pass_role_required_to_launch_with_a_profile(server: RoleportServer, iam: Any, name: Any) -> None:
    iam.create_role(RoleName=name("passed"), AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName=name("passed"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("passed"), RoleName=name("passed"))
    creds = user_with_key(server, iam, name("launcher"), allow("ec2:*"))
    ec2 = client_as(server, "ec2", creds)
    launch = {"ImageId": "ami-0abcdef1234567890", "MinCount": 1, "MaxCount": 1}
    error = error_of(ec2.run_instances, IamInstanceProfile={"Name": name("passed")}, **launch)
    assert error["Code"] == "UnauthorizedOperation"
    assert f"iam:PassRole on resource: arn:aws:iam::{ACCOUNT}:role/{name('passed')}" in error["Message"]
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{name('passed')}"
    condition = {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    iam.put_user_policy(
        UserName=name("launcher"),
        PolicyName="pass",
        PolicyDocument=policy(allow("iam:PassRole", role_arn, Condition=condition)),
    )
    instance = ec2.run_instances(IamInstanceProfile={"Name": name("passed")}, **launch)["Instances"][0]
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{name('passed')}")


def test_inactive_and_deleted_keys_are_refused(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("keys"), allow("iam:ListRoles"))
    iam.update_access_key(UserName=name("keys"), AccessKeyId=creds["key"], Status="Inactive")
    assert error_of(client_as(server, "iam", creds).list_roles)["Code"] == "InvalidClientTokenId"
    iam.delete_access_key(UserName=name("keys"), AccessKeyId=creds["key"])
    assert error_of(client_as(server, "iam", creds).list_roles)["Code"] == "InvalidClientTokenId"


def test_role_with_only_ssm_core_cannot_create_roles(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("assumer")
    creds = user_with_key(server, iam, caller)
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{caller}"}, "Action": "sts:AssumeRole"}
    )
    iam.create_role(RoleName=name("ssm"), AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName=name("ssm"), PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    assumed = client_as(server, "sts", creds).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name('ssm')}", RoleSessionName="probe"
    )
    role_iam = client_as(server, "iam", session_credentials(assumed))
    error = error_of(role_iam.create_role, RoleName=name("escalate"), AssumeRolePolicyDocument=EC2_TRUST)
    assert error["Code"] == "AccessDenied"
    assert error["Message"].startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{name('ssm')}/probe is not authorized"
    )


def test_simulate_principal_policy_matches_real_calls(server: RoleportServer, iam: Any, name: Any) -> None:
    user = name("sim")
    user_with_key(server, iam, user, allow("iam:Get*"), deny("iam:GetUser"))
    results = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
        ActionNames=["iam:GetRole", "iam:GetUser", "iam:CreateRole"],
    )["EvaluationResults"]
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in results}
    assert decisions == {"iam:GetRole": "allowed", "iam:GetUser": "explicitDeny", "iam:CreateRole": "implicitDeny"}
    matched = next(r for r in results if r["EvalActionName"] == "iam:GetRole")["MatchedStatements"]
    assert matched[0]["SourcePolicyType"] == "user" and matched[0]["StartPosition"]["Line"] == 1


def test_simulate_custom_policy_with_context(iam: Any) -> None:
    document = policy(allow("s3:GetObject", Condition={"Bool": {"aws:SecureTransport": "true"}}))
    results = iam.simulate_custom_policy(
        PolicyInputList=[document],
        ActionNames=["s3:GetObject"],
        ContextEntries=[
            {"ContextKeyName": "aws:SecureTransport", "ContextKeyValues": ["false"], "ContextKeyType": "boolean"}
        ],
    )["EvaluationResults"]
    assert results[0]["EvalDecision"] == "implicitDeny"
    assert json.loads(document)["Statement"]


def test_simulate_principal_policy_pages_by_max_items_and_the_paginator_collects_every_result(
    server: RoleportServer, iam: Any, name: Any
) -> None:
    user = name("sim-pages")
    user_with_key(server, iam, user, allow("s3:Get*"))
    actions = [f"s3:GetObject{number:03d}" for number in range(150)]
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    first = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=10)
    assert len(first["EvaluationResults"]) == 10 and first["IsTruncated"] is True
    second = iam.simulate_principal_policy(
        PolicySourceArn=arn, ActionNames=actions, MaxItems=10, Marker=first["Marker"]
    )
    assert [r["EvalActionName"] for r in second["EvaluationResults"]] == actions[10:20]
    # Without MaxItems a page holds IAM's default of 100.
    default = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions)
    assert len(default["EvaluationResults"]) == 100 and default["IsTruncated"] is True
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=arn, ActionNames=actions, PaginationConfig={"PageSize": 40}
    )
    seen = [r["EvalActionName"] for page in pages for r in page["EvaluationResults"]]
    assert seen == actions
    last = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=1000)
    assert len(last["EvaluationResults"]) == 150 and last["IsTruncated"] is False and "Marker" not in last


def test_simulate_custom_policy_pages_actions_by_resources(iam: Any) -> None:
    document = policy(allow("s3:GetObject", "arn:aws:s3:::a/*"))
    actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = ["arn:aws:s3:::a/x", "arn:aws:s3:::b/x"]
    pages = iam.get_paginator("simulate_custom_policy").paginate(
        PolicyInputList=[document], ActionNames=actions, ResourceArns=resources, PaginationConfig={"PageSize": 4}
    )
    seen = [
        (r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for p in pages for r in p["EvaluationResults"]
    ]
    assert seen == [
        (action, resource, "allowed" if (action, resource) == ("s3:GetObject", "arn:aws:s3:::a/x") else "implicitDeny")
        for action in actions
        for resource in resources
    ]


def test_simulate_with_a_marker_it_did_not_make_is_invalid_input(iam: Any) -> None:
    document = policy(allow("s3:GetObject"))
    for marker in ("bm90LWEtbWFya2Vy", "garbage!", "cnAxH3NpbXVsYXRlHzk5"):  # the last: an index past the end
        error = error_of(
            iam.simulate_custom_policy, PolicyInputList=[document], ActionNames=["s3:GetObject"], Marker=marker
        )
        assert error == {"Code": "InvalidInput", "Message": "Invalid Marker.", "Status": 400}


def test_simulate_custom_policy_with_many_actions_answers_one_page(iam: Any) -> None:
    actions = [f"s3:Get{number}" for number in range(20_000)]
    answer = iam.simulate_custom_policy(PolicyInputList=[policy(allow("s3:*"))], ActionNames=actions, MaxItems=5)
    assert [r["EvalActionName"] for r in answer["EvaluationResults"]] == actions[:5] and answer["IsTruncated"]
