"""Entities per account counted in a row of their own (schema.counters), for quota checks that hold under many
writers."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update

from roleport.errors import AwsError
from roleport.store import schema, sql
from roleport.store.db import Prepared, Tx

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
        # Two first uses at once (PostgreSQL) may both find no counter: the second makes none.
        sql.insert_ignoring_conflicts(tx, schema.counters, {"name": name, "value": count.scalar_one()})


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
