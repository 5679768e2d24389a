"""The EC2 helpers (ec2_lifecycle, ec2_filters, ec2_ids, EC2 paging tokens): passing states that settle with time
(the same rule in Python and in SQL), filter wildcards, ids and paging tokens, checked against real SQLite and
PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import literal, select

from roleport.errors import AwsError
from roleport.services import ec2_filters, ec2_ids
from roleport.services.ec2_lifecycle import ASSOCIATION_STATES, INSTANCE_STATES, METADATA_STATES, Lifecycle
from roleport.store import paging
from roleport.store.db import Store
from roleport.store.schema import Timestamp
from tests.conftest import postgres_database

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
DELAY = timedelta(seconds=0.2)
CUTOFF = NOW - DELAY


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ec2') / 'unit.db'}"
        running = Store(url)
        running.create()
        yield running
        running.dispose()
        return
    for url in postgres_database():
        running = Store(url)
        running.create()
        yield running
        running.dispose()


def sql_value(store: Store, expression: object) -> object:
    with store.transaction(write=False) as tx:
        return tx.execute(select(expression)).scalar()  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------- lifecycles


def test_passing_state_holds_until_the_delay_has_passed() -> None:
    assert INSTANCE_STATES.at("pending", NOW, CUTOFF) == "pending"
    assert INSTANCE_STATES.at("pending", NOW - timedelta(seconds=0.1), CUTOFF) == "pending"


def test_passing_state_settles_exactly_at_the_delay() -> None:
    assert INSTANCE_STATES.at("pending", CUTOFF, CUTOFF) == "running"
    assert INSTANCE_STATES.at("stopping", CUTOFF - timedelta(hours=5), CUTOFF) == "stopped"
    assert INSTANCE_STATES.at("shutting-down", CUTOFF, CUTOFF) == "terminated"


def test_zero_delay_settles_at_once() -> None:
    assert INSTANCE_STATES.at("pending", NOW, NOW) == "running"
    assert ASSOCIATION_STATES.at("associating", NOW, NOW) == "associated"


def test_stable_states_never_move() -> None:
    for state in ("running", "stopped", "terminated"):
        assert INSTANCE_STATES.at(state, NOW, CUTOFF) == state
        assert INSTANCE_STATES.at(state, NOW - timedelta(days=1), CUTOFF) == state


def test_each_lifecycle_has_its_own_passing_states() -> None:
    assert ASSOCIATION_STATES.at("disassociating", CUTOFF, CUTOFF) == "disassociated"
    assert METADATA_STATES.at("pending", CUTOFF, CUTOFF) == "applied"
    assert METADATA_STATES.at("applied", NOW, CUTOFF) == "applied"


CASES = [
    (lifecycle, state, NOW - offset)
    for lifecycle in (INSTANCE_STATES, ASSOCIATION_STATES, METADATA_STATES)
    for state in (*lifecycle.settles, *lifecycle.settles.values())
    for offset in (timedelta(0), timedelta(seconds=0.1), DELAY, DELAY + timedelta(microseconds=1), timedelta(days=3))
]


@pytest.mark.parametrize(("lifecycle", "state", "since"), CASES)
def test_sql_state_is_the_python_state(store: Store, lifecycle: Lifecycle, state: str, since: datetime) -> None:
    expression = lifecycle.sql(literal(state), literal(since, Timestamp()), literal(CUTOFF, Timestamp()))
    assert sql_value(store, expression) == lifecycle.at(state, since, CUTOFF)


# ---------------------------------------------------------------------------------------------- wildcards


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("web-1", "web-1", True),
        ("web-1", "web-*", True),
        ("web-1", "*-1", True),
        ("web-1", "w?b-1", True),
        ("web-1", "w?-1", False),
        ("WEB-1", "web-*", False),  # EC2 filter values are case-sensitive
        ("web-1", "WEB-1", False),
        ("a%b", "a%b", True),
        ("axb", "a%b", False),  # % and _ are plain characters in EC2 filters
        ("a_b", "a_?", True),
        ("axb", "a_b", False),
        ("*star", "\\*star", True),  # a backslash makes the next character literal
        ("xstar", "\\*star", False),
        ("what?", "what\\?", True),
        ("whatx", "what\\?", False),
        ("back\\slash", "back\\\\slash", True),
        ("[x]", "[x]*", True),
        ("x", "[x]", False),
    ],
)
def test_filter_values_match_as_ec2_does(store: Store, value: str, pattern: str, expected: bool) -> None:
    condition = ec2_filters.matches(literal(value), [pattern])
    assert bool(sql_value(store, condition)) is expected


def test_any_of_several_values_matches(store: Store) -> None:
    condition = ec2_filters.matches(literal("stopped"), ["running", "stop*"])
    assert bool(sql_value(store, condition)) is True


def test_no_values_match_nothing(store: Store) -> None:
    assert bool(sql_value(store, ec2_filters.matches(literal("x"), []))) is False


def test_wildcard_parts() -> None:
    assert ec2_filters.parse_wildcards("a*b?\\*") == (
        True,
        [("lit", "a"), ("*", ""), ("lit", "b"), ("?", ""), ("lit", "*")],
    )
    assert ec2_filters.parse_wildcards("plain") == (False, [("lit", c) for c in "plain"])


# ---------------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize("good", ["i-0123456789abcdef0", "i-01234567"])
def test_well_formed_instance_ids_pass(good: str) -> None:
    assert ec2_ids.check_instance_ids([good, good]) == [good]


@pytest.mark.parametrize("bad", ["i-xyz", "i-0123456789ABCDEF0", "i-0123456789abcdef", "x-01234567", ""])
def test_malformed_instance_id_is_refused_with_aws_text(bad: str) -> None:
    with pytest.raises(AwsError) as caught:
        ec2_ids.check_instance_ids(["i-0123456789abcdef0", bad])
    assert (caught.value.code, caught.value.message) == ("InvalidInstanceID.Malformed", f'Invalid id: "{bad}"')


@pytest.mark.parametrize("bad", ["ami-xyz", "ami-123", "i-0123456789abcdef0", "ami-0123456789abcdef"])
def test_malformed_image_id(bad: str) -> None:
    with pytest.raises(AwsError) as caught:
        ec2_ids.check_image_id(bad)
    assert caught.value.code == "InvalidAMIID.Malformed"
    assert caught.value.message == f'Invalid id: "{bad}" (expecting "ami-...")'


def test_image_ids_of_both_lengths_pass() -> None:
    ec2_ids.check_image_id("ami-0abcdef1234567890")
    ec2_ids.check_image_id("ami-12345678")


def test_not_found_names_one_or_many() -> None:
    assert ec2_ids.instances_not_found(["i-1"]).message == "The instance ID 'i-1' does not exist"
    assert ec2_ids.instances_not_found(["i-1", "i-2"]).message == "The instance IDs 'i-1, i-2' do not exist"
    assert ec2_ids.associations_not_found(["a"]).message == "The association ID 'a' does not exist"


# ---------------------------------------------------------------------------------------------- paging tokens


def test_token_round_trips() -> None:
    assert paging.Ec2Tokens("instances").decode(paging.Ec2Tokens("instances").encode([42]), 1) == [42]


@pytest.mark.parametrize("token", ["garbage", "", paging.Ec2Tokens("associations").encode([3])])
def test_foreign_or_broken_token_is_invalid_parameter_value(token: str) -> None:
    with pytest.raises(AwsError) as caught:
        paging.Ec2Tokens("instances").decode(token, 1)
    assert caught.value.code == "InvalidParameterValue"
    assert caught.value.message == f"Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
