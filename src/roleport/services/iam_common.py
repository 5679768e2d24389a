"""Lookups and tag handling shared by the IAM resource modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from roleport.errors import AwsError
from roleport.store import paging, schema
from roleport.store.db import Prepared, Row, Tx

DEFAULT_MAX_ITEMS = 100


_ROLE_BY_NAME = Prepared(
    select(schema.roles).where(
        schema.roles.c.account_id == bindparam("account"), schema.roles.c.name_key == bindparam("key")
    )
)
_PROFILE_BY_NAME = Prepared(
    select(schema.instance_profiles).where(
        schema.instance_profiles.c.account_id == bindparam("account"),
        schema.instance_profiles.c.name_key == bindparam("key"),
    )
)


def _no_such_role(name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The role with name {name} cannot be found.")


def _no_such_profile(name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"Instance Profile {name} cannot be found.")


def find_role(tx: Tx, account_id: str, name: str, *, lock: bool = False) -> Row:
    """The role; with lock, held for the rest of the transaction (locked), for calls that change what it owns."""
    row = tx.execute(_ROLE_BY_NAME, {"account": account_id, "key": name.lower()}).first()
    if row is None:
        raise _no_such_role(name)
    return locked(tx, schema.roles, row, lambda: _no_such_role(name)) if lock else row


def find_profile(tx: Tx, account_id: str, name: str, *, lock: bool = False) -> Row:
    """The instance profile; with lock, held for the rest of the transaction, as find_role."""
    row = tx.execute(_PROFILE_BY_NAME, {"account": account_id, "key": name.lower()}).first()
    if row is None:
        raise _no_such_profile(name)
    return locked(tx, schema.instance_profiles, row, lambda: _no_such_profile(name)) if lock else row


def locked(tx: Tx, table: Table, row: Row, missing: AwsError | Callable[[], AwsError], *, shared: bool = False) -> Row:
    """The owner row, held until the transaction ends (Tx.lock_owner) so that concurrent calls changing what it owns
    (tags, policies, versions, keys, its role) run one at a time and none exceeds a quota or trips on another's row.
    A writer that held it first may have deleted it: the caller is then told the owner does not exist. `shared`
    only keeps it from being deleted meanwhile (Tx.lock_owner)."""
    found = tx.lock_owner(table, row, shared=shared)
    if found is None:
        raise missing if isinstance(missing, AwsError) else missing()
    return found


def path_filter(column: Any, prefix: str | None) -> Any:
    return column.startswith(prefix, autoescape=True) if prefix and prefix != "/" else None


def page_params(p: dict[str, Any]) -> tuple[str | None, int]:
    return p.get("Marker"), int(p.get("MaxItems", DEFAULT_MAX_ITEMS))


def paged(rows_and_marker: tuple[list[Any], str | None], key: str, items: list[Any]) -> dict[str, Any]:
    """IAM's list envelope: IsTruncated always, Marker only when there is more."""
    _, marker = rows_and_marker
    result: dict[str, Any] = {key: items, "IsTruncated": marker is not None}
    if marker is not None:
        result["Marker"] = marker
    return result


def check_boundary(tx: Tx, arn: str | None) -> None:
    """A PermissionsBoundary must name an existing managed policy (CreateRole, CreateUser references)."""
    if arn is None:
        return
    if tx.execute(select(schema.policies.c.id).where(schema.policies.c.arn == arn)).first() is None:
        raise AwsError("NoSuchEntity", f"Scope ARN: {arn} does not exist or is not attachable.")


def list_by_path(
    tx: Tx, table: Table, account_id: str, p: dict[str, Any], key: str, render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """A List call over named entities of an account: PathPrefix, then keyset paging by name."""
    query = select(table).where(table.c.account_id == account_id)
    prefix = path_filter(table.c.path, p.get("PathPrefix"))
    if prefix is not None:
        query = query.where(prefix)
    marker, limit = page_params(p)
    page = paging.page(tx, query, [table.c.name_key], marker, limit)
    return paged(page, key, [render(row) for row in page[0]])


def check_tags(tags: list[dict[str, str]]) -> None:
    keys = [tag["Key"].lower() for tag in tags]
    if len(set(keys)) != len(keys):
        raise AwsError("InvalidInput", "Duplicate tag keys found. Please note that Tag keys are case insensitive.")
    for key in keys:
        if key.startswith("aws:"):
            raise AwsError("InvalidInput", "User-defined tag keys can't start with 'aws:'.")


def put_tags(tx: Tx, table: Table, owner_id: str, tags: list[dict[str, str]], quota_name: str, quota: int) -> None:
    """Add or overwrite tags (a key that differs only in case replaces the old one), within the per-resource quota.

    The caller holds the owner (locked) or has just created it, so no other call changes its tags meanwhile: the
    delete and insert cannot meet another caller's row, and the count is the final one. (A delete and insert rather
    than an upsert: the journal records an insert as a new row, which an upsert's update is not.)"""
    if not tags:
        return
    check_tags(tags)
    lowered = [tag["Key"].lower() for tag in tags]
    tx.execute(delete(table).where(table.c.owner_id == owner_id, table.c.key_lower.in_(lowered)))
    tx.execute(
        table.insert(),
        [
            {"owner_id": owner_id, "key_lower": k, "key": t["Key"], "value": t["Value"]}
            for k, t in zip(lowered, tags, strict=True)
        ],
    )
    count = tx.execute(select(func.count()).select_from(table).where(table.c.owner_id == owner_id)).scalar_one()
    if count > quota:
        raise AwsError("LimitExceeded", f"Cannot exceed quota for {quota_name}: {quota}.")


def remove_tags(tx: Tx, table: Table, owner_id: str, keys: list[str]) -> None:
    lowered = [key.lower() for key in keys]
    if lowered:
        tx.execute(delete(table).where(table.c.owner_id == owner_id, table.c.key_lower.in_(lowered)))


def _tags_query(table: Table) -> Prepared:
    return Prepared(
        select(table.c.key, table.c.value).where(table.c.owner_id == bindparam("owner")).order_by(table.c.key)
    )


_TAGS = {table.name: _tags_query(table) for table in (schema.role_tags, schema.profile_tags, schema.policy_tags)}


def tags_of(tx: Tx, table: Table, owner_id: str) -> list[dict[str, str]]:
    rows = tx.execute(_TAGS[table.name], {"owner": owner_id})
    return [{"Key": row.key, "Value": row.value} for row in rows]


def list_tags(tx: Tx, table: Table, owner_id: str, p: dict[str, Any]) -> dict[str, Any]:
    marker, limit = page_params(p)
    query = select(table.c.key, table.c.value).where(table.c.owner_id == owner_id)
    page = paging.page(tx, query, [table.c.key], marker, limit)
    return paged(page, "Tags", [{"Key": row.key, "Value": row.value} for row in page[0]])


# Entities per account are counted in a row of their own (schema.counters), kept in step by the create and delete
# calls, so a quota check costs one indexed update however many entities exist; count(*) grew with the account.
# The counter row is the lock that serializes concurrent creates of one kind in an account (the update holds it until
# the transaction ends), so two of them can never both see room for one more.
_COUNTED = {
    "roles": schema.roles,
    "instance_profiles": schema.instance_profiles,
    "users": schema.users,
    "policies": schema.policies,
}
_BUMP = Prepared(
    update(schema.counters)
    .where(schema.counters.c.name == bindparam("counter"))
    .values(value=schema.counters.c.value + bindparam("delta"))
)
_READ = Prepared(select(schema.counters.c.value).where(schema.counters.c.name == bindparam("counter")))


def ensure_counters(tx: Tx, account_id: str) -> None:
    """Create the account's entity counters from the tables, once (at server start, or on first use)."""
    for kind in _COUNTED:
        _ensure(tx, kind, account_id)


def _ensure(tx: Tx, kind: str, account_id: str) -> None:
    name = f"{kind}:{account_id}"
    if tx.execute(_READ, {"counter": name}).first() is None:
        table = _COUNTED[kind]
        count = tx.execute(select(func.count()).select_from(table).where(table.c.account_id == account_id))
        # Two first uses at once (PostgreSQL) both find no counter: the second insert waits for the first and then
        # does nothing, where a plain insert would fail on the key.
        insert = postgresql.insert if tx.dialect.name == "postgresql" else sqlite.insert
        made = insert(schema.counters).values(name=name, value=count.scalar_one()).on_conflict_do_nothing()
        tx.execute(made)


def claim(tx: Tx, kind: str, account_id: str, quota: int, error: AwsError) -> None:
    """Count one more entity of a kind, refusing it past the quota (the transaction then rolls the count back)."""
    counter = {"counter": f"{kind}:{account_id}", "delta": 1}
    if tx.execute(_BUMP, counter).rowcount == 0:
        _ensure(tx, kind, account_id)
        tx.execute(_BUMP, counter)
    if tx.execute(_READ, counter).scalar() > quota:
        raise error


def release(tx: Tx, kind: str, account_id: str) -> None:
    """Count one entity fewer; called after its row is deleted."""
    counter = {"counter": f"{kind}:{account_id}", "delta": -1}
    if tx.execute(_BUMP, counter).rowcount == 0:
        _ensure(tx, kind, account_id)  # counts the table as it now is, the deleted row already gone
