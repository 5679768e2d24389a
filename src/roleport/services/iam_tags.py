"""Tags on IAM entities: AWS's checks and quota, set, remove, list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select

from roleport.errors import AwsError
from roleport.services.iam_lookups import page_params, paged
from roleport.store import paging, schema
from roleport.store.db import Prepared, Tx


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
