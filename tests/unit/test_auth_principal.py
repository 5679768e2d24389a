"""auth/principal.py: who signed a request, from its access key, on a real SQLite store: the root key without the
store, users' long-term keys, role sessions' temporary keys, and AWS's answers for keys it refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from roleport.auth import principal, sessions
from roleport.auth.sigv4 import SignedRequest
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.store.db import Row, Store, Tx
from tests.unit.iam_rows import ACCOUNT, START, add_access_key, add_role, add_user

SETTINGS = Settings(root_access_key="AKIAROOTROOTROOT0001", root_secret_key="root-secret")
INVALID = ("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
EXPIRED = ("ExpiredToken", "The security token included in the request is expired", 403)
EC2_FAILURE = ("AuthFailure", "AWS was not able to validate the provided access credentials", 401)


def signed(key: str, token: str | None = None, service: str = "iam") -> SignedRequest:
    return SignedRequest(
        key, "20260501", "us-east-1", service, ("host",), "0" * 64, "20260501T120000Z", token, False, None
    )


def refused(tx: Tx | None, request: SignedRequest, service: str = "iam", now: datetime = START) -> tuple[Any, ...]:
    """The error `resolve` refuses the request with: code, message, HTTP status."""
    with pytest.raises(AwsError) as caught:
        principal.resolve(tx, SETTINGS, request, service, now)
    return caught.value.code, caught.value.message, caught.value.status


@pytest.fixture
def tx(store: Store) -> Iterator[Tx]:
    with store.transaction(write=True) as running:
        yield running


def test_the_root_key_is_recognised_without_the_store() -> None:
    found, secret = principal.resolve(None, SETTINGS, signed(SETTINGS.root_access_key), "iam", START)
    assert secret == "root-secret"
    assert (found.kind, found.arn, found.user_id, found.account_id) == (
        "root",
        f"arn:aws:iam::{ACCOUNT}:root",
        ACCOUNT,
        ACCOUNT,
    )


def test_the_root_key_with_a_session_token_is_not_the_root() -> None:
    assert refused(None, signed(SETTINGS.root_access_key, token="anything")) == INVALID


def test_without_a_store_any_other_key_is_invalid() -> None:
    assert refused(None, signed("AKIAUNKNOWNUNKNOWN00")) == INVALID


@pytest.mark.parametrize(("service", "answer"), [("iam", INVALID), ("sts", INVALID), ("ec2", EC2_FAILURE)])
def test_an_unknown_key_is_refused_in_each_service_s_words(tx: Tx, service: str, answer: tuple[str, str, int]) -> None:
    assert refused(tx, signed("AKIAUNKNOWNUNKNOWN00", service=service), service) == answer


def test_a_user_key_resolves_to_the_user_with_its_path(tx: Tx) -> None:
    user = add_user(tx, "alice", path="/team/")
    key, secret = add_access_key(tx, user)
    found, returned = principal.resolve(tx, SETTINGS, signed(key), "iam", START)
    assert returned == secret
    assert found.arn == f"arn:aws:iam::{ACCOUNT}:user/team/alice"
    assert (found.kind, found.user_id, found.name, found.entity_arn) == ("user", user.entity_id, "alice", found.arn)
    assert found.user_id.startswith("AIDA")


def test_an_inactive_user_key_is_invalid(tx: Tx) -> None:
    key, _ = add_access_key(tx, add_user(tx, "bob"), status="Inactive")
    assert refused(tx, signed(key)) == INVALID


def test_a_long_term_key_with_a_session_token_is_invalid(tx: Tx) -> None:
    key, _ = add_access_key(tx, add_user(tx, "carol"))
    assert refused(tx, signed(key, token="not-for-long-term-keys")) == INVALID


def _session(tx: Tx, instance_id: str | None = None) -> Row:
    role = add_role(tx, "builder", path="/ci/")
    return sessions.mint(
        tx,
        account_id=ACCOUNT,
        role=role,
        session_name="job-7",
        source="ec2",
        now=START,
        duration_seconds=3600,
        instance_id=instance_id,
    )


def test_a_session_key_resolves_to_the_assumed_role(tx: Tx) -> None:
    session = _session(tx, instance_id="i-0123456789abcdef0")
    found, secret = principal.resolve(tx, SETTINGS, signed(session.access_key_id, session.token), "sts", START)
    assert secret == session.secret
    # The session ARN drops the role's path; the role's own ARN (aws:PrincipalArn) keeps it.
    assert found.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/builder/job-7"
    assert found.entity_arn == f"arn:aws:iam::{ACCOUNT}:role/ci/builder"
    assert found.user_id == f"{session.role_id}:job-7"
    assert (found.kind, found.name, found.session_name) == ("assumed-role", "builder", "job-7")
    assert (found.token_issued, found.source_instance) == (START, "i-0123456789abcdef0")


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_session_key_without_its_own_token_is_invalid(tx: Tx, token: str | None) -> None:
    session = _session(tx)
    assert refused(tx, signed(session.access_key_id, token)) == INVALID


def test_an_unknown_session_key_is_invalid(tx: Tx) -> None:
    assert refused(tx, signed("ASIAUNKNOWNUNKNOWN00", "token")) == INVALID


def test_a_session_is_valid_until_its_expiration_and_expired_from_it(tx: Tx) -> None:
    session = _session(tx)
    request = signed(session.access_key_id, session.token)
    expiration = START + timedelta(seconds=3600)
    found, _ = principal.resolve(tx, SETTINGS, request, "sts", expiration - timedelta(microseconds=1))
    assert found.kind == "assumed-role"
    assert refused(tx, request, "sts", now=expiration) == EXPIRED
    assert refused(tx, signed(session.access_key_id, session.token, "ec2"), "ec2", now=expiration) == EC2_FAILURE


def test_one_root_principal_is_shared_by_every_root_call() -> None:
    assert principal.root(SETTINGS) is principal.root(Settings(account_id=ACCOUNT))
