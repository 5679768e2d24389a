"""auth/identity.py: the policies that apply to a principal, read from a real SQLite store: inline and attached
managed policies (their default version), the permissions boundary, session policies, the condition keys they
mention, and IAM changes that reach authorization only after the propagation delay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from roleport.auth import identity
from roleport.auth.policy import Policy
from roleport.auth.principal import Principal
from roleport.clock import ControlledClock
from roleport.store import journal
from roleport.store.db import Store, Tx
from tests.unit.iam_rows import (
    START,
    add_managed,
    add_role,
    add_user,
    allow,
    attach,
    deny,
    document,
    put_inline,
    role_session,
)


@pytest.fixture
def tx(store: Store) -> Iterator[Tx]:
    with store.transaction(write=True) as running:
        yield running


def sets_of(tx: Tx, principal: Principal) -> identity.PolicySets:
    return identity.policy_sets(tx, principal, identity.version(tx, START), START)


def statements(policies: tuple[Policy, ...] | None) -> list[list[dict[str, object]]]:
    return [list(policy.document.statements) for policy in policies or ()]


def test_a_user_without_policies_has_empty_identity_and_neither_session_nor_boundary(tx: Tx) -> None:
    assert sets_of(tx, add_user(tx, "idle")) == identity.PolicySets((), None, None)


def test_inline_and_attached_managed_policies_are_the_identity_policies(tx: Tx) -> None:
    user = add_user(tx, "alice")
    put_inline(tx, user, "own", document(allow("s3:GetObject")))
    arn = add_managed(tx, "Shared", document(allow("iam:List*")), old_text=document(allow("*")))
    attach(tx, user, arn)
    found = sets_of(tx, user)
    assert [policy.source_id for policy in found.identity] == ["alice/own", arn]
    # The managed policy is read at its default version (v2), never an older one.
    assert statements(found.identity) == [[allow("s3:GetObject")], [allow("iam:List*")]]


def test_a_role_session_gets_its_role_s_policies(tx: Tx) -> None:
    role = add_role(tx, "builder")
    session = role_session(role, "job-7")
    put_inline(tx, session, "build", document(allow("ec2:RunInstances")))
    assert statements(sets_of(tx, session).identity) == [[allow("ec2:RunInstances")]]
    assert sets_of(tx, add_user(tx, "builder")).identity == ()  # a user of the same name is someone else


def test_a_permissions_boundary_is_its_managed_policy(tx: Tx) -> None:
    arn = add_managed(tx, "Ceiling", document(allow("iam:*")))
    found = sets_of(tx, add_user(tx, "bounded", boundary=arn))
    assert [policy.source_id for policy in found.boundary or ()] == [arn]


def test_a_boundary_naming_a_deleted_policy_is_an_empty_boundary_that_allows_nothing(tx: Tx) -> None:
    found = sets_of(tx, add_user(tx, "orphaned", boundary="arn:aws:iam::123456789012:policy/Gone"))
    assert found.boundary == ()


def test_session_policies_are_a_separate_set(tx: Tx) -> None:
    role = add_role(tx, "narrowed")
    texts = [document(allow("s3:GetObject")), document(deny("s3:GetObject", "arn:aws:s3:::secret/*"))]
    found = sets_of(tx, role_session(role, "s", session_policy=json.dumps(texts)))
    assert statements(found.session) == [[allow("s3:GetObject")], [deny("s3:GetObject", "arn:aws:s3:::secret/*")]]
    assert sets_of(tx, role_session(role, "t")).session is None  # no session policy: nothing narrows


def test_mentioned_keys_are_condition_keys_and_policy_variables_lower_cased(tx: Tx) -> None:
    user = add_user(tx, "keys")
    put_inline(
        tx,
        user,
        "conditions",
        document(
            allow("s3:GetObject", "arn:aws:s3:::home/${aws:username}/*"),
            allow("ec2:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            deny("iam:*", Condition={"StringNotEquals": {"aws:PrincipalTag/Team": "ops"}}),
        ),
    )
    found = identity.mentioned_keys(sets_of(tx, user))
    assert found == ("aws:principaltag/team", "aws:sourceip", "aws:username")
    assert identity.mentioned_keys(identity.PolicySets((), None, None)) == ()


def test_the_sets_key_tells_sessions_and_iam_states_apart(tx: Tx) -> None:
    role = add_role(tx, "keyed")
    seen = identity.version(tx, START)
    plain, narrowed = role_session(role, "a"), role_session(role, "b", session_policy="[]")
    assert identity.sets_key(plain, seen) == identity.sets_key(role_session(role, "c"), seen)
    assert identity.sets_key(plain, seen) != identity.sets_key(narrowed, seen)
    later = identity.Version(seen.generation + 1, seen.first_pending)
    assert identity.sets_key(plain, seen) != identity.sets_key(plain, later)


def test_iam_changes_reach_authorization_after_the_propagation_delay(tmp_path: Path) -> None:
    clock = ControlledClock(START)
    propagation = journal.Propagation(clock, delay=10)
    store = Store(f"sqlite:///{tmp_path / 'delayed.db'}", journal=propagation.journal)
    store.create()
    try:
        with store.transaction(write=True) as tx:
            user = add_user(tx, "late")
        with store.transaction(write=True) as tx:
            put_inline(tx, user, "new", document(allow("iam:ListRoles")))
        for elapsed, expected in ((9.9, []), (10, [[allow("iam:ListRoles")]])):
            now = START + timedelta(seconds=elapsed)
            with store.transaction(write=False) as tx:
                seen = identity.version(tx, now)
                assert statements(identity.policy_sets(tx, user, seen, now).identity) == expected
    finally:
        store.dispose()
