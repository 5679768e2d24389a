"""The EC2 invariants the database itself holds, on SQLite and PostgreSQL: one active association per instance,
one reservation per client token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from roleport.store import schema
from roleport.store.db import Store
from tests.conftest import postgres_database

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    urls = (
        iter([f"sqlite:///{tmp_path_factory.mktemp('ec2-schema') / 'unit.db'}"])
        if request.param == "sqlite"
        else postgres_database()
    )
    for url in urls:
        running = Store(url)
        running.create()
        yield running
        running.dispose()


def reservation(token: str | None = None) -> dict[str, Any]:
    return {
        "id": "r-" + uuid.uuid4().hex[:17],
        "account_id": "123456789012",
        "client_token": token,
        "request_digest": "d",
        "create_time": NOW,
    }


def instance(reservation_id: str) -> dict[str, Any]:
    return {
        "id": "i-" + uuid.uuid4().hex[:17],
        "account_id": "123456789012",
        "reservation_id": reservation_id,
        "launch_index": 0,
        "image_id": "ami-12345678",
        "instance_type": "t3.micro",
        "architecture": "x86_64",
        "availability_zone": "us-east-1a",
        "private_ip": "172.31.0.1",
        "private_dns_name": "ip-172-31-0-1.ec2.internal",
        "state": "running",
        "state_since": NOW,
        "launch_time": NOW,
        "first_launch_time": NOW,
        "http_tokens": "optional",
        "http_endpoint": "enabled",
        "http_put_response_hop_limit": 1,
        "instance_metadata_tags": "disabled",
        "http_protocol_ipv6": "disabled",
        "metadata_state": "applied",
        "metadata_since": NOW,
    }


def association(instance_id: str, active: bool) -> dict[str, Any]:
    return {
        "id": "iip-assoc-" + uuid.uuid4().hex[:17],
        "account_id": "123456789012",
        "instance_id": instance_id,
        "active_instance_id": instance_id if active else None,
        "profile_arn": "arn:aws:iam::123456789012:instance-profile/p",
        "profile_id": "AIPAEXAMPLEEXAMPLE000",
        "state": "associated" if active else "disassociating",
        "state_since": NOW,
        "create_time": NOW,
    }


def an_instance(store: Store) -> str:
    made = reservation()
    row = instance(made["id"])
    with store.transaction(write=True) as tx:
        tx.execute(schema.ec2_reservations.insert().values(**made))
        tx.execute(schema.ec2_instances.insert().values(**row))
    return str(row["id"])


def test_a_second_active_association_on_one_instance_is_refused(store: Store) -> None:
    instance_id = an_instance(store)
    with store.transaction(write=True) as tx:
        tx.execute(schema.ec2_associations.insert().values(**association(instance_id, active=True)))
    with pytest.raises(store.integrity_error), store.transaction(write=True) as tx:
        tx.execute(schema.ec2_associations.insert().values(**association(instance_id, active=True)))


def test_ended_associations_never_collide(store: Store) -> None:
    instance_id = an_instance(store)
    with store.transaction(write=True) as tx:
        for _ in range(3):
            tx.execute(schema.ec2_associations.insert().values(**association(instance_id, active=False)))
        tx.execute(schema.ec2_associations.insert().values(**association(instance_id, active=True)))


def test_a_client_token_names_one_reservation_per_account(store: Store) -> None:
    token = uuid.uuid4().hex
    with store.transaction(write=True) as tx:
        tx.execute(schema.ec2_reservations.insert().values(**reservation(token)))
        tx.execute(schema.ec2_reservations.insert().values(**reservation(None)))
        tx.execute(schema.ec2_reservations.insert().values(**reservation(None)))
    with pytest.raises(store.integrity_error), store.transaction(write=True) as tx:
        tx.execute(schema.ec2_reservations.insert().values(**reservation(token)))


def test_deleting_an_instance_takes_its_associations_and_tags(store: Store) -> None:
    instance_id = an_instance(store)
    with store.transaction(write=True) as tx:
        tx.execute(schema.ec2_associations.insert().values(**association(instance_id, active=True)))
        tx.execute(schema.ec2_instance_tags.insert().values(instance_id=instance_id, key="k", value="v"))
        tx.execute(schema.ec2_instances.delete().where(schema.ec2_instances.c.id == instance_id))
        left = tx.execute(
            schema.ec2_associations.select().where(schema.ec2_associations.c.instance_id == instance_id)
        ).rows
    assert left == []
