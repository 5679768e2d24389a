"""auth/trust.py: whether a role's trust policy lets a caller assume it, for each way a Principal element can name
the caller (a service, the caller's own ARN, its account, everyone), with explicit denies, NotPrincipal and
conditions; and whether the grant is the caller's own (DIRECT) or delegated to its account's policies (ACCOUNT)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roleport.auth.trust import ACCOUNT, DIRECT, Caller, Verdict, evaluate_trust

ACCOUNT_ID = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/builder"
SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/builder/job-7"
USER = Caller(account_id=ACCOUNT_ID, arns=(ALICE,))
ROLE_SESSION = Caller(account_id=ACCOUNT_ID, arns=(ROLE, SESSION))
EC2 = Caller(service="ec2.amazonaws.com")


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def statement(principal: Any, effect: str = "Allow", action: Any = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": action, **extra}


def verdict(text: str, caller: Caller, action: str = "sts:AssumeRole", **context: list[str]) -> Verdict:
    return evaluate_trust(text, caller, action, context)


def test_a_service_principal_lets_that_service_assume_the_role() -> None:
    text = trust(statement({"Service": "ec2.amazonaws.com"}))
    assert verdict(text, EC2) == Verdict(True, DIRECT)
    assert verdict(text, Caller(service="lambda.amazonaws.com")) == Verdict(False)
    assert verdict(text, USER) == Verdict(False)  # naming a service names no AWS identity


def test_a_list_of_services_names_each_of_them() -> None:
    text = trust(statement({"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}))
    assert verdict(text, EC2).allowed


@pytest.mark.parametrize("named", [ALICE, [ROLE, ALICE], "*"])
def test_naming_the_caller_itself_is_a_direct_grant(named: Any) -> None:
    assert verdict(trust(statement({"AWS": named})), USER) == Verdict(True, DIRECT)


@pytest.mark.parametrize("named", [ROLE, SESSION])
def test_a_role_session_is_named_by_its_role_or_its_session_arn(named: str) -> None:
    assert verdict(trust(statement({"AWS": named})), ROLE_SESSION) == Verdict(True, DIRECT)


@pytest.mark.parametrize("named", [ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:root"])
def test_naming_the_account_delegates_to_the_account(named: str) -> None:
    assert verdict(trust(statement({"AWS": named})), USER) == Verdict(True, ACCOUNT)


@pytest.mark.parametrize("named", ["999999999999", "arn:aws:iam::999999999999:root", f"{ALICE}-other"])
def test_another_account_or_another_user_does_not_name_the_caller(named: str) -> None:
    assert verdict(trust(statement({"AWS": named})), USER) == Verdict(False)


def test_principal_star_lets_any_aws_identity_assume() -> None:
    assert verdict(trust(statement("*")), USER) == Verdict(True, DIRECT)


def test_a_direct_grant_wins_over_a_delegation_to_the_account() -> None:
    text = trust(statement({"AWS": ACCOUNT_ID}), statement({"AWS": ALICE}))
    assert verdict(text, USER) == Verdict(True, DIRECT)


def test_an_explicit_deny_naming_the_caller_wins_over_any_allow() -> None:
    text = trust(statement({"AWS": ALICE}), statement({"AWS": ACCOUNT_ID}, effect="Deny"))
    assert verdict(text, USER) == Verdict(False, explicit_deny=True)


def test_a_deny_naming_someone_else_does_not_touch_the_caller() -> None:
    text = trust(statement({"AWS": ALICE}), statement({"AWS": ROLE}, effect="Deny"))
    assert verdict(text, USER) == Verdict(True, DIRECT)


def test_not_principal_denies_everyone_but_those_it_names() -> None:
    deny_others = {"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "sts:AssumeRole"}
    text = trust(statement({"AWS": ACCOUNT_ID}), deny_others)
    assert verdict(text, USER) == Verdict(False, explicit_deny=True)
    assert verdict(text, Caller(account_id=ACCOUNT_ID, arns=(ROLE,))) == Verdict(True, ACCOUNT)


def test_the_statement_must_allow_the_action_asked_for() -> None:
    text = trust(statement({"AWS": ALICE}))
    assert verdict(text, USER, "sts:TagSession") == Verdict(False)
    assert verdict(trust(statement({"AWS": ALICE}, action="sts:*")), USER, "sts:TagSession").allowed


def test_conditions_are_evaluated_against_the_request_context() -> None:
    text = trust(statement({"AWS": ALICE}, Condition={"StringEquals": {"sts:ExternalId": "expected"}}))
    assert verdict(text, USER, **{"sts:ExternalId": ["expected"]}) == Verdict(True, DIRECT)
    assert verdict(text, USER, **{"sts:ExternalId": ["other"]}) == Verdict(False)
    assert verdict(text, USER) == Verdict(False)  # a missing key does not match StringEquals
