"""IAM rows written straight into a real store, for unit tests of the authorization modules: users, roles, their
policies, tags, boundaries and access keys, as the IAM services would have left them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from roleport import ids
from roleport.auth.principal import Principal
from roleport.store import schema
from roleport.store.db import Tx
from tests.policy_documents import allow as allow  # re-exported: the unit suites take them from here
from tests.policy_documents import deny as deny
from tests.policy_documents import policy

ACCOUNT = "123456789012"
START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
document = policy  # the name the unit suites use


def add_user(tx: Tx, name: str, path: str = "/", boundary: str | None = None) -> Principal:
    """A users row; the principal a request signed with one of its keys resolves to."""
    user_id = ids.unique_id("AIDA")
    tx.execute(
        schema.users.insert(),
        {
            "id": user_id,
            "account_id": ACCOUNT,
            "name": name,
            "name_key": name.lower(),
            "path": path,
            "create_date": START,
            "permissions_boundary": boundary,
        },
    )
    arn = ids.iam_arn(ACCOUNT, "user", path, name)
    return Principal(
        kind="user", arn=arn, user_id=user_id, account_id=ACCOUNT, name=name, entity_id=user_id, entity_arn=arn
    )


def add_role(tx: Tx, name: str, trust: str = "{}", path: str = "/", boundary: str | None = None) -> Any:
    """A roles row, returned as the store gives it back (what sessions.mint takes)."""
    role_id = ids.unique_id("AROA")
    tx.execute(
        schema.roles.insert(),
        {
            "id": role_id,
            "account_id": ACCOUNT,
            "name": name,
            "name_key": name.lower(),
            "path": path,
            "create_date": START,
            "trust_policy": trust,
            "description": None,
            "max_session_duration": 3600,
            "permissions_boundary": boundary,
        },
    )
    return tx.execute(schema.roles.select().where(schema.roles.c.id == role_id)).one()


def role_session(role: Any, session_name: str, session_policy: str | None = None) -> Principal:
    """The principal of a session of `role`, as principal.resolve builds it from the session row."""
    return Principal(
        kind="assumed-role",
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.name}/{session_name}",
        user_id=f"{role.id}:{session_name}",
        account_id=ACCOUNT,
        name=role.name,
        entity_id=role.id,
        entity_arn=ids.iam_arn(ACCOUNT, "role", role.path, role.name),
        session_name=session_name,
        session_policy=session_policy,
        token_issued=START,
    )


def put_inline(tx: Tx, principal: Principal, policy_name: str, text: str) -> None:
    owner = "user" if principal.kind == "user" else "role"
    table = schema.user_inline_policies if owner == "user" else schema.role_inline_policies
    tx.execute(table.insert(), {f"{owner}_id": principal.entity_id, "name": policy_name, "document": text})


def add_managed(tx: Tx, policy_name: str, text: str, *, old_text: str | None = None) -> str:
    """A customer managed policy whose default version holds `text` (`old_text`, if given, is an older version
    that must not be the one evaluated); its ARN."""
    policy_id = ids.unique_id("ANPA")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/{policy_name}"
    versions = [text] if old_text is None else [old_text, text]
    tx.execute(
        schema.policies.insert(),
        {
            "id": policy_id,
            "account_id": ACCOUNT,
            "arn": arn,
            "name": policy_name,
            "name_key": policy_name.lower(),
            "path": "/",
            "description": None,
            "create_date": START,
            "update_date": START,
            "default_version_id": f"v{len(versions)}",
            "next_version": len(versions) + 1,
            "is_attachable": True,
        },
    )
    for number, version_text in enumerate(versions, start=1):
        tx.execute(
            schema.policy_versions.insert(),
            {
                "policy_id": policy_id,
                "version_id": f"v{number}",
                "version_number": number,
                "document": version_text,
                "create_date": START,
            },
        )
    return arn


def attach(tx: Tx, principal: Principal, arn: str) -> None:
    owner = "user" if principal.kind == "user" else "role"
    table = schema.user_policy_attachments if owner == "user" else schema.role_policy_attachments
    policy_id = tx.execute(schema.policies.select().where(schema.policies.c.arn == arn)).one().id
    tx.execute(table.insert(), {f"{owner}_id": principal.entity_id, "policy_id": policy_id})


def tag(tx: Tx, principal: Principal, key: str, value: str) -> None:
    table = schema.user_tags if principal.kind == "user" else schema.role_tags
    tx.execute(table.insert(), {"owner_id": principal.entity_id, "key_lower": key.lower(), "key": key, "value": value})


def add_access_key(tx: Tx, user: Principal, status: str = "Active") -> tuple[str, str]:
    key, secret = ids.access_key_id(), ids.secret_access_key()
    tx.execute(
        schema.access_keys.insert(),
        {"id": key, "user_id": user.entity_id, "secret": secret, "status": status, "create_date": START},
    )
    return key, secret
