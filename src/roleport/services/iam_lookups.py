"""Finding IAM entities by name (with the row locks writers take), path filters and list envelopes, shared by the
IAM resource modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, bindparam, select

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
