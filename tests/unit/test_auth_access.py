"""auth/access.py: one call's authorization on a real SQLite store: the root user, implicit and explicit denies, session
policies and permissions boundaries with AWS's message for each, EC2's encoded failure, and the request context
(global condition keys, principal tags, policy variables) that conditions read."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from roleport.auth.access import Access
from roleport.auth.principal import Principal, root
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.store.db import Store, Tx
from tests.unit.iam_rows import (
    ACCOUNT,
    START,
    add_managed,
    add_role,
    add_user,
    allow,
    deny,
    document,
    put_inline,
    role_session,
    tag,
)

ROLES = f"arn:aws:iam::{ACCOUNT}:role/*"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"


@pytest.fixture
def tx(store: Store) -> Iterator[Tx]:
    with store.transaction(write=True) as running:
        yield running


def access(tx: Tx, principal: Principal, service: str = "iam", source_ip: str = "127.0.0.1") -> Access:
    return Access(tx, principal, service, START, source_ip, "us-east-1")


def denial(check: Callable[..., None], *args: Any) -> tuple[str, str, int | None]:
    with pytest.raises(AwsError) as caught:
        check(*args)
    return caught.value.code, caught.value.message, caught.value.status


def user_with(tx: Tx, name: str, *statements: dict[str, Any], boundary: str | None = None) -> Principal:
    user = add_user(tx, name, boundary=boundary)
    if statements:
        put_inline(tx, user, "p", document(*statements))
    return user


def test_the_root_user_is_not_subject_to_identity_policies(tx: Tx) -> None:
    check = access(tx, root(Settings(account_id=ACCOUNT)))
    check("iam:DeleteRole", ROLES)
    assert not check.explicitly_denied("iam:DeleteRole", ROLES)


def test_without_a_policy_that_allows_it_the_call_is_implicitly_denied(tx: Tx) -> None:
    user = user_with(tx, "nobody")
    assert denial(access(tx, user), "iam:ListRoles", ROLES) == (
        "AccessDenied",
        f"User: {user.arn} is not authorized to perform: iam:ListRoles on resource: {ROLES} because no "
        "identity-based policy allows the iam:ListRoles action",
        403,
    )


def test_an_allow_for_the_action_and_resource_lets_the_call_through(tx: Tx) -> None:
    check = access(tx, user_with(tx, "lister", allow("iam:List*", ROLES)))
    check("iam:ListRoles", ROLES)
    assert denial(check, "iam:ListUsers", f"arn:aws:iam::{ACCOUNT}:user/*")[0] == "AccessDenied"


def test_an_explicit_deny_wins_over_any_allow(tx: Tx) -> None:
    user = user_with(tx, "denied", allow("iam:*"), deny("iam:DeleteRole"))
    check = access(tx, user)
    check("iam:GetRole", ROLES)
    assert denial(check, "iam:DeleteRole", ROLES) == (
        "AccessDenied",
        f"User: {user.arn} is not authorized to perform: iam:DeleteRole on resource: {ROLES} with an explicit deny "
        "in an identity-based policy",
        403,
    )
    assert check.explicitly_denied("iam:DeleteRole", ROLES)
    assert not check.explicitly_denied("iam:GetRole", ROLES)


def test_a_session_policy_narrows_what_the_role_allows(tx: Tx) -> None:
    role = add_role(tx, "wide")
    texts = [document(allow("iam:Get*"), deny("iam:GetRolePolicy"))]
    session = role_session(role, "narrow", session_policy=json.dumps(texts))
    put_inline(tx, session, "all", document(allow("iam:*")))
    check = access(tx, session)
    check("iam:GetRole", ROLES)
    assert denial(check, "iam:ListRoles", ROLES)[1].endswith(
        "because no session policy allows the iam:ListRoles action"
    )
    assert denial(check, "iam:GetRolePolicy", ROLES)[1].endswith(
        "on resource: " + ROLES + " with an explicit deny in a session policy"
    )
    # A session policy grants nothing the role's own policies do not.
    bare = role_session(add_role(tx, "bare"), "s", session_policy=json.dumps([document(allow("iam:*"))]))
    assert denial(access(tx, bare), "iam:GetRole", ROLES)[1].endswith(
        "because no identity-based policy allows the iam:GetRole action"
    )


def test_a_permissions_boundary_caps_what_identity_policies_allow(tx: Tx) -> None:
    ceiling = add_managed(tx, "Ceiling", document(allow("iam:Get*"), deny("iam:GetUser")))
    user = user_with(tx, "bounded", allow("iam:*"), boundary=ceiling)
    check = access(tx, user)
    check("iam:GetRole", ROLES)
    message = denial(check, "iam:ListRoles", ROLES)[1]
    assert message.endswith("because no permissions boundary allows the iam:ListRoles action")
    assert denial(check, "iam:GetUser", ROLES)[1].endswith("with an explicit deny in a permissions boundary")


def test_ec2_denies_with_unauthorized_operation_and_an_encoded_message(tx: Tx) -> None:
    user = user_with(tx, "ec2-user", allow("ec2:Describe*"), deny("ec2:TerminateInstances"))
    check = access(tx, user, service="ec2")
    check("ec2:DescribeInstances", "*")
    for action, explicit in (("ec2:RunInstances", False), ("ec2:TerminateInstances", True)):
        code, message, status = denial(check, action, INSTANCE)
        assert (code, status) == ("UnauthorizedOperation", 403)
        prefix = (
            f"You are not authorized to perform this operation. User: {user.arn} is not authorized to perform: "
            f"{action} on resource: {INSTANCE} "
        )
        assert message.startswith(prefix)
        encoded = message.rsplit("Encoded authorization failure message: ", 1)[1]
        assert json.loads(base64.urlsafe_b64decode(encoded)) == {
            "allowed": False,
            "explicitDeny": explicit,
            "context": {"principal": {"arn": user.arn}, "action": action, "resource": INSTANCE},
        }


def test_policy_variables_are_filled_from_the_request_context(tx: Tx) -> None:
    home = f"arn:aws:iam::{ACCOUNT}:user/home/${{aws:username}}"
    check = access(tx, user_with(tx, "dana", allow("iam:GetUser", home)))
    check("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/home/dana")
    assert denial(check, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/home/erin")[0] == "AccessDenied"


def test_principal_tags_are_condition_keys(tx: Tx) -> None:
    only_ops = allow("iam:ListRoles", Condition={"StringEquals": {"aws:PrincipalTag/team": "ops"}})
    ops, dev = user_with(tx, "ops-user", only_ops), user_with(tx, "dev-user", only_ops)
    tag(tx, ops, "team", "ops")
    tag(tx, dev, "team", "dev")
    access(tx, ops)("iam:ListRoles", ROLES)
    assert denial(access(tx, dev), "iam:ListRoles", ROLES)[0] == "AccessDenied"


def test_a_decision_kept_for_one_caller_is_not_reused_for_another_source_ip(tx: Tx) -> None:
    # Two requests of one user in one transaction: the kept decision must follow the key the policy reads.
    user = user_with(tx, "office", allow("iam:ListRoles", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    access(tx, user, source_ip="10.1.2.3")("iam:ListRoles", ROLES)
    assert denial(access(tx, user, source_ip="192.0.2.1"), "iam:ListRoles", ROLES)[0] == "AccessDenied"


def test_extra_context_keys_reach_the_conditions(tx: Tx) -> None:
    passing = allow("iam:PassRole", Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})
    check = access(tx, user_with(tx, "passer", passing))
    check("iam:PassRole", ROLES, {"iam:PassedToService": ["ec2.amazonaws.com"]})
    denied = denial(check, "iam:PassRole", ROLES, {"iam:PassedToService": ["lambda.amazonaws.com"]})
    assert denied[0] == "AccessDenied"


def test_the_base_context_of_a_user_holds_aws_global_keys(tx: Tx) -> None:
    user = add_user(tx, "ctx")
    tag(tx, user, "Team", "blue")
    context = access(tx, user, source_ip="203.0.113.9").base_context()
    assert context["aws:username"] == ["ctx"]
    assert context["aws:userid"] == [user.user_id]
    assert context["aws:PrincipalArn"] == [user.arn]
    assert context["aws:PrincipalType"] == ["User"]
    assert context["aws:PrincipalAccount"] == [ACCOUNT]
    assert context["aws:SourceIp"] == ["203.0.113.9"]
    assert context["aws:CurrentTime"] == ["2026-05-01T12:00:00Z"]
    assert context["aws:EpochTime"] == [str(int(START.timestamp()))]
    assert context["aws:RequestedRegion"] == ["us-east-1"]
    assert (context["aws:SecureTransport"], context["aws:ViaAWSService"]) == (["false"], ["false"])
    assert context["aws:PrincipalTag/Team"] == ["blue"]
    assert "aws:TokenIssueTime" not in context  # long-term keys carry no token


def test_the_base_context_of_a_role_session_names_the_role_and_its_instance(tx: Tx) -> None:
    role = add_role(tx, "onbox", path="/svc/")
    session = replace(role_session(role, "i-0123456789abcdef0"), source_instance="i-0123456789abcdef0")
    context = access(tx, session).base_context()
    assert context["aws:PrincipalArn"] == [f"arn:aws:iam::{ACCOUNT}:role/svc/onbox"]
    assert context["aws:PrincipalType"] == ["AssumedRole"]
    assert context["aws:userid"] == [f"{role.id}:i-0123456789abcdef0"]
    assert context["aws:TokenIssueTime"] == ["2026-05-01T12:00:00Z"]
    assert context["aws:MultiFactorAuthPresent"] == ["false"]
    assert context["ec2:SourceInstanceARN"] == [INSTANCE]
    assert "aws:username" not in context
