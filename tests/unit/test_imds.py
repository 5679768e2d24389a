"""imds/service.py on a real SQLite store with a pinned clock: token bounds and expiry to the millisecond, the trust
check, instance states, and when credentials are re-served or rotated, without sleeping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from roleport.config import Settings
from roleport.imds import replies as imds_replies
from roleport.imds import service as imds
from roleport.imds import tokens as imds_tokens
from roleport.store import schema
from roleport.store.db import Store

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KEY = bytes(range(32))
ACCOUNT = "123456789012"


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


EC2 = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


# --- tokens -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ttl"), [("1", 1), ("21600", 21600), (" 300 ", 300), ("007", 7)])
def test_token_ttl_accepts_whole_seconds_from_1_to_21600(value: str, ttl: int) -> None:
    assert imds_tokens.token_ttl(value) == ttl


@pytest.mark.parametrize("value", [None, "", "0", "21601", "-1", "+5", "1.0", "1e3", "six", "\uff11"])
def test_token_ttl_refuses_anything_else(value: str | None) -> None:
    assert imds_tokens.token_ttl(value) is None


def test_token_is_valid_until_its_ttl_has_passed() -> None:
    made = imds_tokens.make_token(KEY, "i-0123456789abcdef0", NOW, 10)
    assert imds_tokens.token_valid(KEY, made, "i-0123456789abcdef0", NOW + timedelta(seconds=9, milliseconds=999))
    assert not imds_tokens.token_valid(KEY, made, "i-0123456789abcdef0", NOW + timedelta(seconds=10))


def test_token_is_valid_only_for_the_instance_that_made_it() -> None:
    made = imds_tokens.make_token(KEY, "i-0123456789abcdef0", NOW, 60)
    assert not imds_tokens.token_valid(KEY, made, "i-0123456789abcdef1", NOW)


def test_token_from_another_key_is_invalid() -> None:
    made = imds_tokens.make_token(bytes(32), "i-0123456789abcdef0", NOW, 60)
    assert not imds_tokens.token_valid(KEY, made, "i-0123456789abcdef0", NOW)


@pytest.mark.parametrize("garbage", ["", "x", "not base64!", "AQ==", "é", "A" * 68])
def test_malformed_tokens_are_invalid(garbage: str) -> None:
    assert not imds_tokens.token_valid(KEY, garbage, "i-0123456789abcdef0", NOW)


def test_a_changed_expiry_breaks_the_token() -> None:
    import base64

    raw = bytearray(base64.urlsafe_b64decode(imds_tokens.make_token(KEY, "i-0123456789abcdef0", NOW, 1)))
    raw[5] ^= 0xFF  # push the expiry far into the future
    forged = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert not imds_tokens.token_valid(KEY, forged, "i-0123456789abcdef0", NOW)


# --- trust ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        trust(EC2),
        trust({**EC2, "Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}}),
        trust({**EC2, "Action": ["sts:AssumeRole", "sts:TagSession"]}),
        trust({**EC2, "Action": "sts:*"}),
    ],
)
def test_ec2_may_assume_when_trusted(policy: str) -> None:
    assert imds.ec2_may_assume(policy)


@pytest.mark.parametrize(
    "policy",
    [
        trust({**EC2, "Principal": {"Service": "lambda.amazonaws.com"}}),
        trust({**EC2, "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}),
        trust({**EC2, "Action": "sts:AssumeRoleWithWebIdentity"}),
        trust(EC2, {**EC2, "Effect": "Deny"}),
        trust({**EC2, "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}),
        "not json",
    ],
)
def test_ec2_may_not_assume_otherwise(policy: str) -> None:
    assert not imds.ec2_may_assume(policy)


# --- the service on a store -------------------------------------------------------------------------------------


def add_instance(store: Store, *, state: str = "running", trust_policy: str | None = trust(EC2)) -> tuple[str, str]:
    """An instance with an active association to a profile holding a role; its id and the role's name."""
    suffix = uuid.uuid4().hex[:17]
    instance_id, role = f"i-{suffix}", f"role-{suffix[:8]}"
    with store.transaction(write=True) as tx:
        tx.execute(schema.ec2_reservations.insert(), [_reservation(suffix)])
        tx.execute(schema.ec2_instances.insert(), [_instance(instance_id, suffix, state)])
        profile_id = f"AIPA{suffix[:17].upper()}"
        tx.execute(schema.instance_profiles.insert(), [_named(profile_id, f"profile-{suffix[:8]}")])
        if trust_policy is not None:
            values = {**_named(f"AROA{suffix[:17].upper()}", role), "trust_policy": trust_policy}
            tx.execute(schema.roles.insert(), [{**values, "max_session_duration": 3600}])
            tx.execute(schema.profile_roles.insert(), [{"profile_id": profile_id, "role_id": values["id"]}])
        tx.execute(schema.ec2_associations.insert(), [_association(instance_id, profile_id, suffix)])
    return instance_id, role


def _reservation(suffix: str) -> dict[str, Any]:
    return {"id": f"r-{suffix}", "account_id": ACCOUNT, "request_digest": "d", "create_time": NOW}


def _instance(instance_id: str, suffix: str, state: str) -> dict[str, Any]:
    return {
        "id": instance_id,
        "account_id": ACCOUNT,
        "reservation_id": f"r-{suffix}",
        "launch_index": 0,
        "image_id": "ami-12345678",
        "instance_type": "t3.micro",
        "architecture": "x86_64",
        "availability_zone": "us-east-1a",
        "private_ip": "172.31.0.1",
        "private_dns_name": "ip-172-31-0-1.ec2.internal",
        "state": state,
        "state_since": NOW - timedelta(minutes=1),
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


def _named(entity_id: str, name: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "account_id": ACCOUNT,
        "name": name,
        "name_key": name.lower(),
        "path": "/",
        "create_date": NOW,
    }


def _association(instance_id: str, profile_id: str, suffix: str) -> dict[str, Any]:
    return {
        "id": f"iip-assoc-{suffix}",
        "account_id": ACCOUNT,
        "instance_id": instance_id,
        "active_instance_id": instance_id,
        "profile_arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/profile-{suffix[:8]}",
        "profile_id": profile_id,
        "state": "associated",
        "state_since": NOW,
        "create_time": NOW,
    }


def service(store: Store, clock: Clock, **settings: Any) -> imds.MetadataService:
    return imds.MetadataService(Settings(**settings), store, clock)


def credentials(metadata: imds.MetadataService, instance_id: str, role: str) -> dict[str, Any]:
    reply = metadata.handle(instance_id, "GET", f"/latest/meta-data/iam/security-credentials/{role}", {})
    assert reply is not None and reply.status == 200
    return dict(json.loads(reply.body))


def test_credentials_are_re_served_until_15_minutes_before_expiry(store: Store) -> None:
    clock = Clock()
    metadata = service(store, clock)
    instance_id, role = add_instance(store)
    first = credentials(metadata, instance_id, role)
    assert first["Expiration"] == "2026-03-04T11:06:07Z"  # six hours
    clock.now = NOW + timedelta(hours=5, minutes=44, seconds=59)
    assert credentials(metadata, instance_id, role)["AccessKeyId"] == first["AccessKeyId"]
    clock.now = NOW + timedelta(hours=5, minutes=45)
    rotated = credentials(metadata, instance_id, role)
    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    assert (rotated["LastUpdated"], rotated["Expiration"]) == ("2026-03-04T10:51:07Z", "2026-03-04T16:51:07Z")


def test_short_lifetimes_rotate_at_half_their_life(store: Store) -> None:
    clock = Clock()
    metadata = service(store, clock, credential_lifetime_seconds=60)
    instance_id, role = add_instance(store)
    first = credentials(metadata, instance_id, role)
    clock.now = NOW + timedelta(seconds=29)
    assert credentials(metadata, instance_id, role)["AccessKeyId"] == first["AccessKeyId"]
    clock.now = NOW + timedelta(seconds=30)
    assert credentials(metadata, instance_id, role)["AccessKeyId"] != first["AccessKeyId"]


def test_token_made_by_one_service_is_accepted_by_another_on_the_same_store(store: Store) -> None:
    clock = Clock()
    instance_id, _ = add_instance(store)
    reply = service(store, clock).handle(instance_id, "PUT", imds.TOKEN_PATH, {imds.TTL_HEADER: "60"})
    assert reply is not None and reply.status == 200
    headers = {imds.TOKEN_HEADER: reply.body.decode()}
    other = service(store, clock).handle(instance_id, "GET", "/latest/meta-data/instance-id", headers)
    assert other is not None and other.body == instance_id.encode()


@pytest.mark.parametrize(("state", "served"), [("pending", True), ("running", True), ("stopped", False)])
def test_only_pending_and_running_instances_answer(store: Store, state: str, served: bool) -> None:
    instance_id, _ = add_instance(store, state=state)
    reply = service(store, Clock()).handle(instance_id, "GET", "/latest/meta-data/instance-id", {})
    assert (reply is not None) is served


def test_stopping_instance_stops_answering_once_stopped(store: Store) -> None:
    clock = Clock()
    instance_id, _ = add_instance(store, state="stopping")
    metadata = service(store, clock, state_transition_seconds=120)  # entered a minute ago: still stopping
    assert metadata.handle(instance_id, "GET", "/latest/meta-data/instance-id", {}) is None


def test_unknown_instance_does_not_answer(store: Store) -> None:
    assert service(store, Clock()).handle("i-0000000000000000a", "GET", "/latest/meta-data/", {}) is None


def test_error_pages_name_the_status() -> None:
    page = imds_replies.error(405).body.decode("latin-1")
    assert "<title>405 - Method Not Allowed</title>" in page and "<h1>405 - Method Not Allowed</h1>" in page
