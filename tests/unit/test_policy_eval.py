"""IAM policy evaluation: statement matching, condition operators, variables, and the deny/allow logic."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from roleport.auth.policy import Decision, Match, Policy, Request, authorize, evaluate
from roleport.auth.policy_document import PolicyDocument, parse

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app"


def policy(*statements: dict[str, Any], source: str = "test", version: str = "2012-10-17") -> Policy:
    return Policy(source, parse(json.dumps({"Version": version, "Statement": list(statements)})))


def allow(action: Any = "*", resource: Any = "*", **fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **fields}


def deny(action: Any = "*", resource: Any = "*", **fields: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **fields}


def request(action: str, resource: str = "*", context: Mapping[str, Sequence[str]] | None = None) -> Request:
    return Request(action, resource, context or {})


def decide(policies: Policy | Sequence[Policy], action: str, resource: str = "*", **context: Any) -> str:
    """Context keys arrive as keyword arguments with "__" for ":" and "_" for "/"; see key()."""
    given = [policies] if isinstance(policies, Policy) else list(policies)
    values = {key(name): value if isinstance(value, list) else [value] for name, value in context.items()}
    return evaluate(given, request(action, resource, values)).decision


def key(name: str) -> str:
    return name.replace("__", ":").replace("_", "/")


def conditioned(condition: dict[str, Any]) -> Policy:
    return policy(allow("s3:GetObject", "*", Condition=condition))


def holds(condition: dict[str, Any], context: Mapping[str, Sequence[str]] | None = None) -> bool:
    """Whether a condition block holds for a request with the given context keys."""
    return evaluate([conditioned(condition)], request("s3:GetObject", "*", context)).decision == "allowed"


# --- The deny/allow logic ------------------------------------------------------------------------------------------

SSM_CORE_LIKE = policy(
    {
        "Effect": "Allow",
        "Action": [
            "ssm:DescribeAssociation",
            "ssm:GetDeployablePatchSnapshotForInstance",
            "ssm:GetDocument",
            "ssm:DescribeDocument",
            "ssm:GetManifest",
            "ssm:GetParameter",
            "ssm:GetParameters",
            "ssm:ListAssociations",
            "ssm:ListInstanceAssociations",
            "ssm:PutInventory",
            "ssm:PutComplianceItems",
            "ssm:PutConfigurePackageResult",
            "ssm:UpdateAssociationStatus",
            "ssm:UpdateInstanceAssociationStatus",
            "ssm:UpdateInstanceInformation",
        ],
        "Resource": "*",
    },
    {
        "Effect": "Allow",
        "Action": [
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ],
        "Resource": "*",
    },
    {
        "Effect": "Allow",
        "Action": [
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:GetEndpoint",
            "ec2messages:GetMessages",
            "ec2messages:SendReply",
        ],
        "Resource": "*",
    },
    source="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


def test_ssm_core_like_policy_implicitly_denies_create_role() -> None:
    decision = evaluate([SSM_CORE_LIKE], request("iam:CreateRole", ROLE_ARN))
    assert decision == Decision("implicitDeny", ())


def test_ssm_core_like_policy_allows_its_own_actions_and_reports_the_statement() -> None:
    decision = evaluate([SSM_CORE_LIKE], request("ec2messages:GetMessages"))
    assert decision == Decision("allowed", (Match("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", 2, "Allow"),))


def test_no_policies_is_implicit_deny() -> None:
    assert evaluate([], request("sts:GetCallerIdentity")) == Decision("implicitDeny", ())


def test_matching_deny_is_explicit_deny() -> None:
    assert decide(policy(deny("iam:CreateRole")), "iam:CreateRole") == "explicitDeny"


def test_deny_in_one_policy_beats_allow_in_another() -> None:
    admin = policy(allow("*", "*"), source="arn:aws:iam::aws:policy/AdministratorAccess")
    guard = policy(allow("s3:*"), deny("iam:*", "*"), source="App/Guard")
    decision = evaluate([admin, guard], request("iam:CreateRole", ROLE_ARN))
    assert decision == Decision("explicitDeny", (Match("App/Guard", 1, "Deny"),))


def test_allowed_reports_every_matching_allow() -> None:
    first = policy(allow("iam:Get*"), allow("iam:GetRole", ROLE_ARN), source="one")
    second = policy(allow("s3:*"), allow("iam:*"), source="two")
    decision = evaluate([first, second], request("iam:GetRole", ROLE_ARN))
    assert decision.matched == (Match("one", 0, "Allow"), Match("one", 1, "Allow"), Match("two", 1, "Allow"))


def test_explicit_deny_reports_every_matching_deny_and_no_allows() -> None:
    policies = policy(allow("*"), deny("iam:*"), deny("iam:Create*"), deny("s3:*"), source="p")
    assert evaluate([policies], request("iam:CreateRole")).matched == (Match("p", 1, "Deny"), Match("p", 2, "Deny"))


def test_statement_with_a_misspelt_effect_never_applies() -> None:
    # parse() refuses this; a hand-built document must not turn "deny" into an Allow either.
    hand_built = Policy("hand", PolicyDocument("2012-10-17", ({"Effect": "allow", "Action": "*", "Resource": "*"},)))
    assert evaluate([hand_built], request("s3:GetObject")).decision == "implicitDeny"


def test_authorize_without_session_or_boundary_is_evaluate() -> None:
    policies = [policy(allow("s3:*"), deny("s3:DeleteBucket"))]
    for action in ("s3:GetObject", "s3:DeleteBucket", "ec2:RunInstances"):
        assert authorize(policies, request(action)) == evaluate(policies, request(action))


# --- NotAction, NotResource ----------------------------------------------------------------------------------------


def test_not_action_allow_covers_every_other_action() -> None:
    everything_but_iam = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert decide(everything_but_iam, "s3:GetObject") == "allowed"
    assert decide(everything_but_iam, "iam:CreateRole") == "implicitDeny"


def test_not_action_deny_denies_everything_but_the_listed_actions() -> None:
    only_iam = [policy(allow("*")), policy({"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*"})]
    assert decide(only_iam, "ec2:RunInstances") == "explicitDeny"
    assert decide(only_iam, "iam:PassRole") == "allowed"


def test_not_resource_excludes_the_listed_resources() -> None:
    all_but_admin = policy({"Effect": "Allow", "Action": "iam:*", "NotResource": f"arn:aws:iam::{ACCOUNT}:role/admin*"})
    assert decide(all_but_admin, "iam:PassRole", ROLE_ARN) == "allowed"
    assert decide(all_but_admin, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin-break-glass") == "implicitDeny"


# --- Action wildcards ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("iam:*AccessKey*", "IAM:listaccesskeys", "allowed"),
        ("IAM:CreateRole", "iam:createrole", "allowed"),
        ("iam:Get?ole", "iam:GetRole", "allowed"),
        ("iam:Get?ole", "iam:GetRoles", "implicitDeny"),
        ("iam:Get*", "iam:CreateRole", "implicitDeny"),
        ("ec2:*", "ec2messages:GetMessages", "implicitDeny"),
        ("iam:*", "sts:AssumeRole", "implicitDeny"),
        ("*", "sts:AssumeRole", "allowed"),
    ],
)
def test_action_wildcards_are_case_insensitive_within_the_service_prefix(
    pattern: str, action: str, expected: str
) -> None:
    assert decide(policy(allow(pattern)), action) == expected


def test_action_dot_is_not_a_regex_wildcard() -> None:
    assert decide(policy(allow("s3:Get.bject")), "s3:GetObject") == "implicitDeny"


# --- Resource wildcards --------------------------------------------------------------------------------------------

BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"


@pytest.mark.parametrize(
    "key",
    [
        "1/test/object.jpg",
        "1/2/test/object.jpg",
        "1/2/test/3/object.jpg",
        "1/2/3/test/4/object.jpg",
        "1///test///object.jpg",
        "1/test/.jpg",
        "/test/object.jpg",
        "1/test/",
    ],
)
def test_resource_star_matches_across_slashes(key: str) -> None:
    # The Resource element page's own example and list.
    assert decide(policy(allow("s3:GetObject", f"{BUCKET}/*/test/*")), "s3:GetObject", f"{BUCKET}/{key}") == "allowed"


@pytest.mark.parametrize("key", ["1-test/object.jpg", "test/object.jpg", "1/2/test.jpg"])
def test_resource_star_pattern_rejects_what_the_docs_reject(key: str) -> None:
    assert decide(policy(allow("s3:GetObject", f"{BUCKET}/*/test/*")), "s3:GetObject", f"{BUCKET}/{key}") == (
        "implicitDeny"
    )


def test_resource_question_mark_matches_exactly_one_character() -> None:
    one = policy(allow("iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/app-?"))
    assert decide(one, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/app-1") == "allowed"
    assert decide(one, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/app-12") == "implicitDeny"
    assert decide(one, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/app-") == "implicitDeny"


def test_resource_matching_is_case_sensitive() -> None:
    bob = policy(allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/Bob"))
    assert decide(bob, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/Bob") == "allowed"
    assert decide(bob, "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/bob") == "implicitDeny"


def test_resource_star_ending_a_segment_crosses_colons() -> None:
    # "If the * wildcard is the last character of a resource ARN segment, it can expand to match beyond the
    # colon boundaries" (Resource element page).
    assert decide(policy(allow("iam:GetRole", "arn:aws:iam::*")), "iam:GetRole", ROLE_ARN) == "allowed"
    assert decide(policy(allow("iam:GetRole", "arn:aws:iam::*:role/app")), "iam:GetRole", ROLE_ARN) == "allowed"
    fn = "arn:aws:lambda:us-east-1:111122223333:function:app:live"
    assert decide(policy(allow("lambda:InvokeFunction", "arn:aws:lambda:*:*:function:app*")), "lambda:X", fn) == (
        "implicitDeny"
    )
    assert decide(policy(allow("lambda:*", "arn:aws:lambda:*:*:function:app*")), "lambda:InvokeFunction", fn) == (
        "allowed"
    )


def test_resource_star_inside_a_segment_stays_inside_it() -> None:
    within = policy(allow("lambda:*", "arn:aws:lambda:us-east-1:111122223333:function:app-*-prod"))
    assert decide(within, "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:app-x-prod") == (
        "allowed"
    )
    assert decide(within, "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:app-x:v-prod") == (
        "implicitDeny"
    )


@pytest.mark.parametrize(
    ("pattern", "resource"),
    [
        ("arn:aws:s3:::my.bucket/a+b", "arn:aws:s3:::myXbucket/aab"),
        ("arn:aws:s3:::my.bucket/a+b", "arn:aws:s3:::my.bucket/aaab"),
        ("arn:aws:s3:::b/(x|y)", "arn:aws:s3:::b/x"),
        ("arn:aws:s3:::b/[xy]", "arn:aws:s3:::b/x"),
        ("arn:aws:s3:::b/^x$", "arn:aws:s3:::b/x"),
        ("arn:aws:s3:::b/x\\d", "arn:aws:s3:::b/x1"),
        ("arn:aws:s3:::b/.*", "arn:aws:s3:::b/anything"),
    ],
)
def test_resource_regex_metacharacters_are_literal(pattern: str, resource: str) -> None:
    assert decide(policy(allow("s3:GetObject", pattern)), "s3:GetObject", resource) == "implicitDeny"
    assert decide(policy(allow("s3:GetObject", pattern)), "s3:GetObject", pattern) == "allowed"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("2024/app/logs/01/web.gz", "allowed"),
        ("2024/logs/web.gz", "implicitDeny"),
        ("a:b/app/logs/web.gz", "implicitDeny"),
        ("2024/app/logs/x:y/web.gz", "allowed"),
    ],
)
def test_resource_with_several_inner_stars(key: str, expected: str) -> None:
    # Inner stars stay inside their colon-separated segment; the one ending the ARN crosses colons.
    logs = policy(allow("s3:GetObject", f"{BUCKET}/*/app/*/*"))
    assert decide(logs, "s3:GetObject", f"{BUCKET}/{key}") == expected


def test_many_star_globs_do_not_backtrack() -> None:
    # As a backtracking regex, this glob takes seconds against 120 characters; subjects come from requests.
    greedy = [
        policy(allow("s3:GetObject", f"{BUCKET}/*a*a*a*a*a*b")),
        conditioned({"StringLike": {"s3:prefix": "*a*a*a*a*a*b"}}),
    ]
    started = time.perf_counter()
    assert decide(greedy, "s3:GetObject", f"{BUCKET}/" + "a" * 120, s3__prefix="a" * 120) == "implicitDeny"
    assert decide(greedy, "s3:GetObject", f"{BUCKET}/" + "a" * 120 + "b") == "allowed"
    assert time.perf_counter() - started < 0.5


def test_request_resource_star_needs_a_star_resource() -> None:
    assert decide(policy(allow("iam:ListRoles", f"arn:aws:iam::{ACCOUNT}:role/*")), "iam:ListRoles") == "implicitDeny"
    assert decide(policy(allow("iam:ListRoles", "*")), "iam:ListRoles") == "allowed"


# --- String operators ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "expected"),
    [
        ("StringEquals", "johndoe", "johndoe", True),
        ("StringEquals", "johndoe", "JohnDoe", False),
        ("StringEquals", "john*", "johndoe", False),
        ("StringNotEquals", "johndoe", "janedoe", True),
        ("StringNotEquals", "johndoe", "johndoe", False),
        ("StringEqualsIgnoreCase", "johndoe", "JohnDoe", True),
        ("StringEqualsIgnoreCase", "johndoe", "janedoe", False),
        ("StringNotEqualsIgnoreCase", "johndoe", "JOHNDOE", False),
        ("StringNotEqualsIgnoreCase", "johndoe", "jane", True),
        ("StringLike", "john*", "johndoe", True),
        ("StringLike", "j?hn", "john", True),
        ("StringLike", "john*", "JOHNDOE", False),
        ("StringLike", "john.doe", "johnXdoe", False),
        ("StringNotLike", "john*", "jane", True),
        ("StringNotLike", "john*", "johndoe", False),
    ],
)
def test_string_operators(operator: str, wanted: str, actual: str, expected: bool) -> None:
    assert holds({operator: {"aws:username": wanted}}, {"aws:username": [actual]}) is expected


def test_string_like_with_several_stars() -> None:
    condition = {"StringLike": {"s3:prefix": "home/*/projects/*/drafts/*"}}
    assert holds(condition, {"s3:prefix": ["home/alice/projects/x:1/drafts/a"]})
    assert not holds(condition, {"s3:prefix": ["home/alice/projects/drafts/a"]})


def test_string_like_star_crosses_colons_and_slashes() -> None:
    assert holds({"StringLike": {"aws:SourceArn": "arn:aws:sns:*"}}, {"aws:SourceArn": ["arn:aws:sns:us-east-1:1:t"]})


def test_values_for_one_key_are_ored() -> None:
    condition = {"StringEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}
    assert holds(condition, {"aws:PrincipalTag/role": ["security"]})
    assert not holds(condition, {"aws:PrincipalTag/role": ["dev"]})


def test_negated_operator_values_are_nored() -> None:
    # "If a single negated matching condition operator includes multiple values for a context key, those values
    # are evaluated using a logical NOR" (Conditions with multiple context keys or values).
    condition = {"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}
    assert not holds(condition, {"aws:PrincipalTag/role": ["audit"]})
    assert holds(condition, {"aws:PrincipalTag/role": ["dev"]})


def test_keys_under_one_operator_are_anded() -> None:
    condition = {"StringEquals": {"aws:PrincipalTag/team": "blue", "aws:RequestedRegion": "eu-west-1"}}
    assert holds(condition, {"aws:PrincipalTag/team": ["blue"], "aws:RequestedRegion": ["eu-west-1"]})
    assert not holds(condition, {"aws:PrincipalTag/team": ["blue"], "aws:RequestedRegion": ["us-east-1"]})


def test_operators_in_one_block_are_anded() -> None:
    condition = {"StringEquals": {"aws:PrincipalTag/team": "blue"}, "Bool": {"aws:SecureTransport": "true"}}
    assert holds(condition, {"aws:PrincipalTag/team": ["blue"], "aws:SecureTransport": ["true"]})
    assert not holds(condition, {"aws:PrincipalTag/team": ["blue"], "aws:SecureTransport": ["false"]})


def test_context_value_given_as_a_bare_string_is_one_value() -> None:
    assert holds({"StringEquals": {"aws:username": "alice"}}, {"aws:username": "alice"})


def test_several_values_without_a_set_operator_match_when_any_does() -> None:
    # Undocumented by AWS; see the module. Negated operators are the negation of the same test.
    assert holds({"StringEquals": {"aws:TagKeys": "Owner"}}, {"aws:TagKeys": ["Project", "Owner"]})
    assert not holds({"StringNotEquals": {"aws:TagKeys": "Owner"}}, {"aws:TagKeys": ["Project", "Owner"]})


def test_condition_key_names_are_case_insensitive() -> None:
    assert holds({"IpAddress": {"AWS:SourceIp": "203.0.113.0/24"}}, {"aws:sourceip": ["203.0.113.9"]})
    assert holds({"StringEquals": {"aws:sourceVpce": "vpce-1a2b"}}, {"AWS:SOURCEVPCE": ["vpce-1a2b"]})


# --- Absent keys, IfExists, Null -----------------------------------------------------------------------------------


def test_absent_key_fails_a_positive_operator() -> None:
    assert not holds({"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}})
    assert not holds({"NumericLessThan": {"s3:max-keys": "10"}})


@pytest.mark.parametrize(
    "operator", ["StringNotEquals", "StringNotLike", "StringNotEqualsIgnoreCase", "ArnNotLike", "NotIpAddress"]
)
def test_absent_key_satisfies_a_negated_operator(operator: str) -> None:
    # "If the policy condition requires that the key is not matched ... and the right key is not present, the
    # condition is true" (Condition operators page).
    value = "203.0.113.0/24" if operator == "NotIpAddress" else "arn:aws:iam::*:role/x"
    assert holds({operator: {"aws:SomeKey": value}})


def test_deny_with_negated_operator_applies_when_the_tag_is_missing() -> None:
    guard = policy(allow("*"), deny("s3:*", "*", Condition={"StringNotEquals": {"aws:PrincipalTag/team": "blue"}}))
    assert decide(guard, "s3:GetObject") == "explicitDeny"
    assert decide(guard, "s3:GetObject", aws__PrincipalTag_team="blue") == "allowed"


def test_if_exists_with_absent_key_holds() -> None:
    assert holds({"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}})


def test_if_exists_with_present_key_is_evaluated() -> None:
    condition = {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}
    assert holds(condition, {"ec2:InstanceType": ["t2.micro"]})
    assert not holds(condition, {"ec2:InstanceType": ["p4d.24xlarge"]})


def test_negated_if_exists_deny_still_denies_without_the_tag() -> None:
    # "If you are using an "Effect": "Deny" element with a negated condition operator like
    # StringNotEqualsIfExists, the request is still denied even if the tag is missing" (Condition operators).
    guard = policy(allow("*"), deny("*", "*", Condition={"StringNotEqualsIfExists": {"aws:PrincipalTag/t": "x"}}))
    assert decide(guard, "s3:GetObject") == "explicitDeny"


@pytest.mark.parametrize(
    ("wanted", "context", "expected"),
    [
        ("true", {}, True),
        ("true", {"aws:TokenIssueTime": ["2024-01-01T00:00:00Z"]}, False),
        ("false", {"aws:TokenIssueTime": ["2024-01-01T00:00:00Z"]}, True),
        ("false", {}, False),
        ("false", {"aws:TokenIssueTime": []}, False),
    ],
)
def test_null_checks_for_an_absent_key(wanted: str, context: dict[str, list[str]], expected: bool) -> None:
    assert holds({"Null": {"aws:TokenIssueTime": wanted}}, context) is expected


def test_null_has_no_if_exists_form() -> None:
    assert not holds({"NullIfExists": {"aws:TokenIssueTime": "true"}})


def test_unknown_operator_never_matches() -> None:
    assert not holds({"StringEqualsMaybe": {"aws:username": "alice"}}, {"aws:username": ["alice"]})
    assert not holds({"SomeVendor:StringEquals": {"aws:username": "alice"}}, {"aws:username": ["alice"]})
    guard = policy(allow("*"), deny("*", "*", Condition={"StringNotEqualz": {"aws:username": "alice"}}))
    assert decide(guard, "s3:GetObject") == "allowed"


# --- Numeric, Date, Bool, Binary, IP, ARN --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "expected"),
    [
        ("NumericEquals", "10", "10", True),
        ("NumericEquals", "10", "10.0", True),
        ("NumericEquals", "10", "11", False),
        ("NumericNotEquals", "10", "11", True),
        ("NumericNotEquals", "10", "10", False),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThan", "10", "10", False),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericLessThanEquals", "10", "11", False),
        ("NumericGreaterThan", "1.5", "1.75", True),
        ("NumericGreaterThan", "1.5", "1.5", False),
        ("NumericGreaterThanEquals", "-3", "-3", True),
        ("NumericGreaterThanEquals", "-3", "-4", False),
        ("NumericEquals", "10", "ten", False),
    ],
)
def test_numeric_operators(operator: str, wanted: str, actual: str, expected: bool) -> None:
    assert holds({operator: {"s3:max-keys": wanted}}, {"s3:max-keys": [actual]}) is expected


def test_numeric_accepts_a_json_number() -> None:
    assert holds({"NumericLessThanEquals": {"s3:max-keys": 10}}, {"s3:max-keys": ["7"]})


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "expected"),
    [
        ("DateGreaterThan", "2020-01-01T00:00:01Z", "2020-06-01T12:00:00Z", True),
        ("DateGreaterThan", "2020-01-01T00:00:01Z", "2019-12-31T23:59:59Z", False),
        ("DateLessThan", "2024-01-01", "2023-12-31T23:59:59Z", True),
        ("DateLessThan", "2024-01", "2024-01-01T00:00:00Z", False),
        ("DateEquals", "2024-01-01T02:00:00+02:00", "2024-01-01T00:00:00Z", True),
        ("DateNotEquals", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", True),
        ("DateLessThanEquals", "1704067200", "2024-01-01T00:00:00Z", True),
        ("DateGreaterThanEquals", "2024-01-01T00:00:00Z", "1704067199", False),
        ("DateGreaterThan", "1704067200", "1704067201", True),
        ("DateEquals", "2024-01-01T00:00:00Z", "not a date", False),
    ],
)
def test_date_operators_take_iso_8601_and_epoch_seconds(
    operator: str, wanted: str, actual: str, expected: bool
) -> None:
    assert holds({operator: {"aws:CurrentTime": wanted}}, {"aws:CurrentTime": [actual]}) is expected


@pytest.mark.parametrize(
    ("wanted", "actual", "expected"),
    [("true", "true", True), ("false", "true", False), ("false", "false", True), (False, "false", True)],
)
def test_bool(wanted: Any, actual: str, expected: bool) -> None:
    assert holds({"Bool": {"aws:SecureTransport": wanted}}, {"aws:SecureTransport": [actual]}) is expected


def test_binary_equals_compares_base64_bytes() -> None:
    condition = {"BinaryEquals": {"kms:EncryptionContext:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}
    assert holds(condition, {"kms:EncryptionContext:blob": ["QmluYXJ5VmFsdWVJbkJhc2U2NA=="]})
    assert not holds(condition, {"kms:EncryptionContext:blob": ["QmluYXJ5VmFsdWU="]})
    assert not holds(condition, {"kms:EncryptionContext:blob": ["not base64!"]})


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "expected"),
    [
        ("IpAddress", "203.0.113.0/24", "203.0.113.200", True),
        ("IpAddress", "203.0.113.0/24", "203.0.114.1", False),
        ("IpAddress", "203.0.113.7", "203.0.113.7", True),
        ("IpAddress", "203.0.113.7", "203.0.113.8", False),
        ("IpAddress", "2001:DB8:1234:5678::/64", "2001:db8:1234:5678::1", True),
        ("IpAddress", "2001:DB8:1234:5678::/64", "2001:db8:1234:5679::1", False),
        ("IpAddress", "2001:DB8:1234:5678::/64", "203.0.113.1", False),
        ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.1", False),
        ("NotIpAddress", "2001:DB8::/32", "2001:db8::9", False),
    ],
)
def test_ip_address_operators(operator: str, wanted: str, actual: str, expected: bool) -> None:
    assert holds({operator: {"aws:SourceIp": wanted}}, {"aws:SourceIp": [actual]}) is expected


def test_ip_address_with_mixed_v4_and_v6_ranges() -> None:
    condition = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}
    assert holds(condition, {"aws:SourceIp": ["2001:db8:1234:5678:abcd::1"]})
    assert holds(condition, {"aws:SourceIp": ["203.0.113.5"]})


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "expected"),
    [
        ("ArnLike", "arn:aws:sns:*:111122223333:topic-*", "arn:aws:sns:us-east-1:111122223333:topic-a", True),
        ("ArnLike", "arn:aws:sns:*:111122223333:topic-*", "arn:aws:sns:us-east-1:444455556666:topic-a", False),
        ("ArnEquals", "arn:aws:sns:us-?ast-1:*:*", "arn:aws:sns:us-east-1:111122223333:t", True),
        ("ArnEquals", f"arn:aws:iam::{ACCOUNT}:role/App", ROLE_ARN, False),
        ("ArnNotEquals", f"arn:aws:iam::{ACCOUNT}:role/*", ROLE_ARN, False),
        ("ArnNotLike", "arn:aws:iam::*:user/*", ROLE_ARN, True),
        ("ArnLike", "arn:aws:sns:*:*:topic:*", "arn:aws:sns:us-east-1:111122223333:topic:sub-1", True),
    ],
)
def test_arn_operators(operator: str, wanted: str, actual: str, expected: bool) -> None:
    assert holds({operator: {"aws:SourceArn": wanted}}, {"aws:SourceArn": [actual]}) is expected


def test_arn_like_checks_components_where_string_like_does_not() -> None:
    # The Condition operators page's own example: StringLike matches, ArnLike does not.
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = ["arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"]
    assert holds({"StringLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value})
    assert not holds({"ArnLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value})


# --- ForAllValues, ForAnyValue -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag_keys", "expected"),
    [
        (["Department"], True),
        (["Department", "CostCenter"], True),
        (["Department", "Environment"], False),
        (["Environment"], False),
        (None, True),
        ([], True),
        ([""], True),
    ],
)
def test_for_all_values(tag_keys: list[str] | None, expected: bool) -> None:
    condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["Department", "CostCenter"]}}
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    assert holds(condition, context) is expected


@pytest.mark.parametrize(
    ("tag_keys", "expected"),
    [
        (["Environment", "Department"], True),
        (["Environment"], False),
        (None, False),
        ([], False),
        ([""], False),
    ],
)
def test_for_any_value(tag_keys: list[str] | None, expected: bool) -> None:
    condition = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["Department", "CostCenter"]}}
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    assert holds(condition, context) is expected


@pytest.mark.parametrize(
    ("tag_keys", "denied"),
    [(["key1:legal"], False), (["key1:hr", "key1:personnel"], False), (["key2:audit"], True), (None, True)],
)
def test_for_all_values_string_not_like_deny_follows_the_docs_table(tag_keys: list[str] | None, denied: bool) -> None:
    # The "Deny a single policy condition value for a multivalued context key" table (Multivalued context key
    # examples page).
    guard = policy(
        allow("*"),
        deny(["iam:Tag*", "iam:UnTag*"], "*", Condition={"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}),
    )
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    decision = evaluate([guard], request("iam:TagRole", ROLE_ARN, context)).decision
    assert decision == ("explicitDeny" if denied else "allowed")


def test_for_any_value_negated_needs_one_value_outside_the_list() -> None:
    condition = {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Department", "CostCenter"]}}
    assert holds(condition, {"aws:TagKeys": ["Department", "Owner"]})
    assert not holds(condition, {"aws:TagKeys": ["Department", "CostCenter"]})


def test_for_any_value_if_exists_holds_for_an_absent_key() -> None:
    assert holds({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "Department"}})


def test_for_all_values_like_with_wildcards() -> None:
    condition = {"ForAllValues:StringLike": {"aws:TagKeys": "Created*"}}
    assert holds(condition, {"aws:TagKeys": ["CreatedBy", "CreatedAt"]})
    assert not holds(condition, {"aws:TagKeys": ["CreatedBy", "Owner"]})


# --- Policy variables ----------------------------------------------------------------------------------------------

OWN_ROLES = policy(allow("iam:*", "arn:aws:iam::*:role/${aws:username}-*"), source="Dev/OwnRoles")


def test_variable_in_resource_is_substituted() -> None:
    assert decide(OWN_ROLES, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/alice-dev", aws__username="alice") == (
        "allowed"
    )
    assert decide(OWN_ROLES, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/bob-dev", aws__username="alice") == (
        "implicitDeny"
    )


def test_variable_without_a_value_makes_the_resource_match_nothing() -> None:
    assert decide(OWN_ROLES, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/-dev") == "implicitDeny"
    assert decide(OWN_ROLES, "iam:PassRole", "arn:aws:iam::111122223333:role/${aws:username}-dev") == "implicitDeny"


def test_not_resource_entry_with_an_unresolved_variable_excludes_nothing() -> None:
    # "If a variable that has no value ... is used as part of the Resource or NotResource element ..., the
    # resource that includes a policy variable with no value will not match any resource" (Variables and tags).
    others = policy({"Effect": "Allow", "Action": "iam:*", "NotResource": "arn:aws:iam::*:role/${aws:username}-*"})
    assert decide(others, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/alice-dev", aws__username="alice") == (
        "implicitDeny"
    )
    assert decide(others, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/alice-dev") == "allowed"


def test_variable_with_several_values_has_no_value() -> None:
    context = {"aws:username": ["alice", "bob"]}
    decision = evaluate([OWN_ROLES], request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/alice-dev", context))
    assert decision.decision == "implicitDeny"


def test_variable_value_is_literal_not_a_wildcard() -> None:
    context = {"aws:username": ["*"]}
    decision = evaluate([OWN_ROLES], request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin-dev", context))
    assert decision.decision == "implicitDeny"


def test_variable_default_applies_when_the_key_is_absent() -> None:
    team = policy(allow("s3:*", "arn:aws:s3:::amzn-s3-demo-bucket-${aws:PrincipalTag/team, 'company-wide'}"))
    assert decide(team, "s3:ListBucket", f"{BUCKET}-company-wide") == "allowed"
    assert decide(team, "s3:ListBucket", f"{BUCKET}-yellow", aws__PrincipalTag_team="yellow") == "allowed"
    assert decide(team, "s3:ListBucket", f"{BUCKET}-company-wide", aws__PrincipalTag_team="yellow") == "implicitDeny"


def test_variables_are_literal_text_in_2008_policies() -> None:
    old = policy(allow("iam:*", "arn:aws:iam::*:role/${aws:username}-*"), version="2008-10-17")
    assert decide(old, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/alice-dev", aws__username="alice") == (
        "implicitDeny"
    )
    assert decide(old, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/${{aws:username}}-dev") == "allowed"


def test_special_character_variables_are_literal() -> None:
    literal = policy(allow("s3:GetObject", "arn:aws:s3:::b/${*}${?}${$}"))
    assert decide(literal, "s3:GetObject", "arn:aws:s3:::b/*?$") == "allowed"
    assert decide(literal, "s3:GetObject", "arn:aws:s3:::b/xy$") == "implicitDeny"


def test_variable_before_the_fifth_colon_is_not_substituted() -> None:
    account = policy(allow("iam:GetRole", "arn:aws:iam::${aws:PrincipalAccount}:role/app"))
    assert decide(account, "iam:GetRole", ROLE_ARN, aws__PrincipalAccount=ACCOUNT) == "implicitDeny"


def test_variable_in_condition_is_substituted() -> None:
    condition = {"StringEquals": {"s3:ExistingObjectTag/owner": "${aws:PrincipalTag/owner}"}}
    assert holds(condition, {"s3:ExistingObjectTag/owner": ["carlos"], "aws:PrincipalTag/owner": ["carlos"]})
    assert not holds(condition, {"s3:ExistingObjectTag/owner": ["carlos"], "aws:PrincipalTag/owner": ["diego"]})


def test_variable_without_value_fails_equals_and_satisfies_not_equals() -> None:
    # "Inverted condition operators like StringNotEquals or StringNotLike do match against a null value"
    # (Variables and tags page, with its Deny example).
    tag = {"s3:ExistingObjectTag/Team": ["red"]}
    assert not holds({"StringEquals": {"s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}"}}, tag)
    assert holds({"StringNotEquals": {"s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}"}}, tag)


def test_variable_in_string_like_keeps_policy_wildcards() -> None:
    condition = {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}
    assert holds(condition, {"s3:prefix": ["home/alice/docs/"], "aws:username": ["alice"]})
    assert not holds(condition, {"s3:prefix": ["home/bob/docs/"], "aws:username": ["alice"]})


def test_variable_is_not_substituted_for_numeric_operators() -> None:
    context = {"s3:max-keys": ["5"], "aws:PrincipalTag/limit": ["5"]}
    assert not holds({"NumericEquals": {"s3:max-keys": "${aws:PrincipalTag/limit}"}}, context)


# --- Session policies and permissions boundaries -------------------------------------------------------------------

S3_ALL = policy(allow("s3:*"), source="arn:aws:iam::111122223333:policy/S3All")
S3_READ = policy(allow(["s3:GetObject", "s3:ListBucket"]), source="session")


def test_session_policy_narrows_the_identity_policy() -> None:
    assert authorize([S3_ALL], request("s3:PutObject"), session=[S3_READ]).decision == "implicitDeny"


def test_session_policy_and_identity_policy_both_allowing_allows() -> None:
    decision = authorize([S3_ALL], request("s3:GetObject"), session=[S3_READ])
    assert decision == Decision("allowed", (Match(S3_ALL.source_id, 0, "Allow"), Match("session", 0, "Allow")))


def test_session_policy_cannot_grant_beyond_the_identity_policy() -> None:
    assert authorize([S3_READ], request("iam:CreateRole"), session=[policy(allow("*"))]).decision == "implicitDeny"


def test_permissions_boundary_narrows_the_identity_policy() -> None:
    boundary = [policy(allow(["s3:*", "cloudwatch:*"]), source="arn:aws:iam::111122223333:policy/Boundary")]
    admin = [policy(allow("*"))]
    assert authorize(admin, request("iam:CreateRole", ROLE_ARN), boundary=boundary).decision == "implicitDeny"
    assert authorize(admin, request("s3:GetObject"), boundary=boundary).decision == "allowed"


def test_permissions_boundary_alone_grants_nothing() -> None:
    assert authorize([], request("s3:GetObject"), boundary=[policy(allow("*"))]).decision == "implicitDeny"


def test_explicit_deny_in_session_policy_denies() -> None:
    session = [policy(allow("*"), deny("s3:DeleteObject"), source="session")]
    decision = authorize([S3_ALL], request("s3:DeleteObject"), session=session)
    assert decision == Decision("explicitDeny", (Match("session", 1, "Deny"),))


def test_explicit_deny_in_permissions_boundary_denies() -> None:
    boundary = [policy(allow("*"), deny("iam:*"), source="boundary")]
    decision = authorize([policy(allow("*"))], request("iam:PassRole", ROLE_ARN), boundary=boundary)
    assert decision == Decision("explicitDeny", (Match("boundary", 1, "Deny"),))


def test_all_three_sets_allowing_allows() -> None:
    decision = authorize([S3_ALL], request("s3:ListBucket"), session=[S3_READ], boundary=[policy(allow("s3:*"))])
    assert decision.decision == "allowed" and len(decision.matched) == 3


def test_empty_session_set_allows_nothing() -> None:
    assert authorize([S3_ALL], request("s3:GetObject"), session=[]).decision == "implicitDeny"


def test_evaluating_the_same_document_twice_gives_the_same_answer() -> None:
    first = evaluate([OWN_ROLES], request("iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/a-x", {"aws:username": ["a"]}))
    second = evaluate([OWN_ROLES], request("iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/b-x", {"aws:username": ["b"]}))
    assert first.decision == second.decision == "allowed"
