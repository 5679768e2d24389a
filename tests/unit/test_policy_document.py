"""The policy grammar checks that turn bad documents into MalformedPolicyDocument."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roleport.auth import policy_document
from roleport.errors import AwsError


def statement(**fields: Any) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **fields}]})


def malformed(text: str, *, trust: bool = False) -> str:
    with pytest.raises(AwsError) as caught:
        policy_document.parse(text, trust=trust)
    assert caught.value.code == "MalformedPolicyDocument"
    return caught.value.message


def test_valid_permissions_policy_parses() -> None:
    parsed = policy_document.parse(statement(Action=["s3:GetObject", "s3:List*"], Resource="arn:aws:s3:::b/*"))
    assert parsed.version == "2012-10-17" and len(parsed.statements) == 1


def test_single_statement_object_is_accepted() -> None:
    text = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}})
    assert policy_document.parse(text).statements[0]["Effect"] == "Deny"


def test_valid_trust_policy_parses() -> None:
    text = statement(Principal={"Service": "ec2.amazonaws.com"}, Action="sts:AssumeRole")
    assert policy_document.parse(text, trust=True).statements[0]["Principal"] == {"Service": "ec2.amazonaws.com"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "This policy contains invalid Json"),
        ("[]", "This policy contains invalid Json"),
        (json.dumps({"Version": "2012-10-17"}), "Syntax errors in policy."),
        (json.dumps({"Version": "2099-01-01", "Statement": []}), "The policy must contain a valid version string"),
        (json.dumps({"Version": 2012, "Statement": []}), "The policy must contain a valid version string"),
        ('{"Statement": ' + "[" * 65 + "]" * 65 + "}", "This policy contains invalid Json"),
        ("[" * 100_000, "This policy contains invalid Json"),
        (statement(Resource="*"), "Policy statement must contain actions."),
        (statement(Action="s3:GetObject"), "Policy statement must contain resources."),
        (
            statement(Action="GetObject", Resource="*"),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        ),
        (statement(Action="s3:Get:Object", Resource="*"), "Actions/Condition can contain only one colon."),
        (statement(Action="s3:GetObject", Resource="bucket"), 'Resource bucket must be in ARN format or "*".'),
        (statement(Action="s3:*", Resource="*", Principal="*"), "Policy document should not specify a principal."),
        (statement(Action="s3:*", Resource="*", Colour="blue"), "Syntax errors in policy."),
    ],
)
def test_malformed_permissions_policies(text: str, message: str) -> None:
    assert malformed(text) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole", "Resource": "*"},
            "Has prohibited field Resource",
        ),
        ({"Action": "sts:AssumeRole"}, "Missing required field Principal"),
        (
            {"Principal": {"Service": "ec2.amazonaws.com"}, "Action": "s3:GetObject"},
            "AssumeRole policy may only specify STS AssumeRole actions.",
        ),
        ({"Principal": {"Robot": "x"}, "Action": "sts:AssumeRole"}, "Invalid principal in policy"),
    ],
)
def test_malformed_trust_policies(fields: dict[str, Any], message: str) -> None:
    assert malformed(statement(**fields), trust=True) == message


def test_a_string_that_never_closes_is_read_in_one_pass() -> None:
    """A 130,000-character document of escaped quotes with no closing one: the depth check reads it in one pass
    (with a backtracking pattern it took about a minute, holding the event loop), and it is malformed."""
    text = '"' + '\\"' * 65000
    with pytest.raises(AwsError) as caught:
        policy_document.parse(text)
    assert caught.value.code == "MalformedPolicyDocument"
