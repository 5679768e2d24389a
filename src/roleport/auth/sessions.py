"""Temporary credentials for a role session: minted for AssumeRole and for instance metadata, found when used."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select

from roleport import ids
from roleport.store import schema
from roleport.store.db import Prepared, Row, Tx

sessions = schema.role_sessions

_BY_KEY = Prepared(select(sessions).where(sessions.c.access_key_id == bindparam("key")))


def assumed_role_arn(account_id: str, role_name: str, session_name: str) -> str:
    # The session ARN drops the role's path (IAM identifiers guide, "assumed-role" ARNs).
    return f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}"


def new_token() -> str:
    """An opaque session token about as long as AWS's (several hundred characters of base64)."""
    return base64.b64encode(secrets.token_bytes(270)).decode()


def mint(
    tx: Tx,
    *,
    account_id: str,
    role: Row,
    session_name: str,
    source: str,
    now: datetime,
    duration_seconds: int,
    instance_id: str | None = None,
    association_id: str | None = None,
    session_policy: str | None = None,
) -> Row:
    """Store and return a new session for `role` (a roles row); the caller decides who may have it."""
    values: dict[str, Any] = {
        "access_key_id": ids.access_key_id(ids.TEMPORARY_KEY_PREFIX),
        "account_id": account_id,
        "secret": ids.secret_access_key(),
        "token": new_token(),
        "role_id": role.id,
        "role_arn": ids.iam_arn(account_id, "role", role.path, role.name),
        "session_name": session_name,
        "source": source,
        "instance_id": instance_id,
        "association_id": association_id,
        "session_policy": session_policy,
        "create_date": now,
        "expiration": now + timedelta(seconds=duration_seconds),
    }
    tx.execute(sessions.insert(), values)
    return find(tx, values["access_key_id"])


def find(tx: Tx, access_key_id: str) -> Row | None:
    return tx.execute(_BY_KEY, {"key": access_key_id}).first()


def credentials_out(session: Row) -> dict[str, Any]:
    """STS's Credentials structure."""
    return {
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret,
        "SessionToken": session.token,
        "Expiration": session.expiration,
    }
