"""A role's permissions: inline policies and attached managed policies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from roleport.auth import policy_document
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_attachments, iam_common
from roleport.services.iam_common import find_role
from roleport.services.registry import operation
from roleport.store import db, schema

inline = schema.role_inline_policies
attachments = schema.role_policy_attachments
policies = schema.policies

# IAM quotas: a role's inline policies may total 10,240 characters, white space not counted.
ROLE_INLINE_POLICY_SIZE = 10240


def _size(document: str) -> int:
    return sum(1 for c in document if not c.isspace())


@operation("iam", "PutRolePolicy")
def put_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    policy_document.parse(p["PolicyDocument"])
    name = p["PolicyName"]
    ctx.tx.execute(delete(inline).where(inline.c.role_id == role.id, inline.c.name == name))
    ctx.tx.execute(inline.insert().values(role_id=role.id, name=name, document=p["PolicyDocument"]))
    documents = ctx.tx.execute(select(inline.c.document).where(inline.c.role_id == role.id)).scalars()
    if sum(_size(document) for document in documents) > ROLE_INLINE_POLICY_SIZE:
        raise AwsError(
            "LimitExceeded", f"Maximum policy size of {ROLE_INLINE_POLICY_SIZE} bytes exceeded for role {role.name}"
        )
    return {}


@operation("iam", "GetRolePolicy")
def get_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    document = ctx.tx.execute(
        select(inline.c.document).where(inline.c.role_id == role.id, inline.c.name == p["PolicyName"])
    ).scalar_one_or_none()
    if document is None:
        raise AwsError("NoSuchEntity", f"The role policy with name {p['PolicyName']} cannot be found.")
    return {"RoleName": role.name, "PolicyName": p["PolicyName"], "PolicyDocument": document}


@operation("iam", "DeleteRolePolicy")
def delete_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    removed = ctx.tx.execute(delete(inline).where(inline.c.role_id == role.id, inline.c.name == p["PolicyName"]))
    if removed.rowcount == 0:
        raise AwsError("NoSuchEntity", f"The role policy with name {p['PolicyName']} cannot be found.")
    return {}


@operation("iam", "ListRolePolicies")
def list_role_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    marker, limit = iam_common.page_params(p)
    page = db.page(ctx.tx, select(inline.c.name).where(inline.c.role_id == role.id), [inline.c.name], marker, limit)
    return iam_common.paged(page, "PolicyNames", [row.name for row in page[0]])


@operation("iam", "AttachRolePolicy")
def attach_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    quota = ctx.settings.quotas.managed_policies_per_role
    iam_attachments.attach(ctx, attachments, "role_id", role.id, p["PolicyArn"], quota, "PoliciesPerRole")
    return {}


@operation("iam", "DetachRolePolicy")
def detach_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    iam_attachments.detach(ctx, attachments, "role_id", role.id, p["PolicyArn"])
    return {}


@operation("iam", "ListAttachedRolePolicies")
def list_attached_role_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return iam_attachments.list_attached(ctx, attachments, "role_id", role.id, p)
