"""A role's or a user's own policies, inline and attached: one implementation for both kinds of principal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, func, select

from roleport.auth import policy_document
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups
from roleport.services.iam_policies import find_policy
from roleport.store import paging, schema

policies = schema.policies


def attach(ctx: Ctx, link: Table, owner: str, owner_id: str, arn: str, quota: int, quota_name: str) -> None:
    """Attach a managed policy; the caller holds the principal (locked), so the count is final. The policy is kept
    from being deleted too (a shared hold, so attaching one policy to many principals at once need not queue): a
    DeletePolicy then either sees this attachment or has already removed the policy, which is NoSuchEntity here
    rather than a broken foreign key."""
    policy = find_policy(ctx, arn, lock=True, shared=True)
    already = ctx.tx.execute(
        select(link.c[owner]).where(link.c[owner] == owner_id, link.c.policy_id == policy.id)
    ).first()
    if already is not None:
        return  # attaching an attached policy changes nothing and is not an error
    count = ctx.tx.execute(select(func.count()).select_from(link).where(link.c[owner] == owner_id))
    if count.scalar_one() >= quota:
        raise AwsError("LimitExceeded", f"Cannot exceed quota for {quota_name}: {quota}")
    ctx.tx.execute(link.insert().values({owner: owner_id, "policy_id": policy.id}))


def detach(ctx: Ctx, link: Table, owner: str, owner_id: str, arn: str) -> None:
    policy = find_policy(ctx, arn)
    removed = ctx.tx.execute(delete(link).where(link.c[owner] == owner_id, link.c.policy_id == policy.id))
    if removed.rowcount == 0:
        raise AwsError("NoSuchEntity", f"Policy {arn} was not found.")


def list_attached(ctx: Ctx, link: Table, owner: str, owner_id: str, p: Params) -> dict[str, Any]:
    query = (
        select(policies.c.name, policies.c.arn, policies.c.name_key)
        .join(link, link.c.policy_id == policies.c.id)
        .where(link.c[owner] == owner_id)
    )
    prefix = iam_lookups.path_filter(policies.c.path, p.get("PathPrefix"))
    if prefix is not None:
        query = query.where(prefix)
    marker, limit = iam_lookups.page_params(p)
    page = paging.page(ctx.tx, query, [policies.c.name_key, policies.c.arn], marker, limit)
    attached = [{"PolicyName": row.name, "PolicyArn": row.arn} for row in page[0]]
    return iam_lookups.paged(page, "AttachedPolicies", attached)


def _size(document: str) -> int:
    # IAM quotas count inline policy size without white space.
    return sum(1 for c in document if not c.isspace())


def _no_such_inline(kind: str, name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The {kind} policy with name {name} cannot be found.")


def put_inline(ctx: Ctx, table: Table, owner: str, row: Any, kind: str, p: Params, size_limit: int) -> None:
    """Add or replace an inline policy; the principal's inline policies together must fit the size quota. The caller
    holds the principal (locked), so the delete and insert cannot meet another caller's row of the same name."""
    policy_document.parse(p["PolicyDocument"])
    name = p["PolicyName"]
    ctx.tx.execute(delete(table).where(table.c[owner] == row.id, table.c.name == name))
    ctx.tx.execute(table.insert().values({owner: row.id, "name": name, "document": p["PolicyDocument"]}))
    documents = ctx.tx.execute(select(table.c.document).where(table.c[owner] == row.id)).scalars()
    if sum(_size(document) for document in documents) > size_limit:
        raise AwsError("LimitExceeded", f"Maximum policy size of {size_limit} bytes exceeded for {kind} {row.name}")


def get_inline(ctx: Ctx, table: Table, owner: str, owner_id: str, kind: str, name: str) -> str:
    document = ctx.tx.execute(
        select(table.c.document).where(table.c[owner] == owner_id, table.c.name == name)
    ).scalar_one_or_none()
    if document is None:
        raise _no_such_inline(kind, name)
    return str(document)


def delete_inline(ctx: Ctx, table: Table, owner: str, owner_id: str, kind: str, name: str) -> None:
    removed = ctx.tx.execute(delete(table).where(table.c[owner] == owner_id, table.c.name == name))
    if removed.rowcount == 0:
        raise _no_such_inline(kind, name)


def list_inline(ctx: Ctx, table: Table, owner: str, owner_id: str, p: Params) -> dict[str, Any]:
    marker, limit = iam_lookups.page_params(p)
    page = paging.page(ctx.tx, select(table.c.name).where(table.c[owner] == owner_id), [table.c.name], marker, limit)
    return iam_lookups.paged(page, "PolicyNames", [row.name for row in page[0]])
