"""A user's permissions: inline policies and attached managed policies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from roleport.auth import policy_document
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_attachments, iam_common
from roleport.services.iam_users import find_user
from roleport.services.registry import operation
from roleport.store import db, schema

inline = schema.user_inline_policies
attachments = schema.user_policy_attachments
policies = schema.policies

# IAM quotas page: a user's inline policies may total 2,048 characters, white space not counted; AWS reports it as
# "Maximum policy size of 2048 bytes exceeded for user NAME" (LimitExceeded, 409).
USER_INLINE_POLICY_SIZE = 2048
# IAM quotas page: "Managed policies attached to an IAM user: 10" (AWS answers "Cannot exceed quota for
# PoliciesPerUser: 10"). Adjustable in AWS up to 20, but roleport offers no knob for it yet.
MANAGED_POLICIES_PER_USER = 10


def _size(document: str) -> int:
    return sum(1 for c in document if not c.isspace())


def _no_such_policy(name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The user policy with name {name} cannot be found.")


@operation("iam", "PutUserPolicy")
def put_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    policy_document.parse(p["PolicyDocument"])
    name = p["PolicyName"]
    ctx.tx.execute(delete(inline).where(inline.c.user_id == user.id, inline.c.name == name))
    ctx.tx.execute(inline.insert().values(user_id=user.id, name=name, document=p["PolicyDocument"]))
    documents = ctx.tx.execute(select(inline.c.document).where(inline.c.user_id == user.id)).scalars()
    if sum(_size(document) for document in documents) > USER_INLINE_POLICY_SIZE:
        raise AwsError(
            "LimitExceeded", f"Maximum policy size of {USER_INLINE_POLICY_SIZE} bytes exceeded for user {user.name}"
        )
    return {}


@operation("iam", "GetUserPolicy")
def get_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    document = ctx.tx.execute(
        select(inline.c.document).where(inline.c.user_id == user.id, inline.c.name == p["PolicyName"])
    ).scalar_one_or_none()
    if document is None:
        raise _no_such_policy(p["PolicyName"])
    return {"UserName": user.name, "PolicyName": p["PolicyName"], "PolicyDocument": document}


@operation("iam", "DeleteUserPolicy")
def delete_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    removed = ctx.tx.execute(delete(inline).where(inline.c.user_id == user.id, inline.c.name == p["PolicyName"]))
    if removed.rowcount == 0:
        raise _no_such_policy(p["PolicyName"])
    return {}


@operation("iam", "ListUserPolicies")
def list_user_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    marker, limit = iam_common.page_params(p)
    page = db.page(ctx.tx, select(inline.c.name).where(inline.c.user_id == user.id), [inline.c.name], marker, limit)
    return iam_common.paged(page, "PolicyNames", [row.name for row in page[0]])


@operation("iam", "AttachUserPolicy")
def attach_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    quota = MANAGED_POLICIES_PER_USER
    iam_attachments.attach(ctx, attachments, "user_id", user.id, p["PolicyArn"], quota, "PoliciesPerUser")
    return {}


@operation("iam", "DetachUserPolicy")
def detach_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    iam_attachments.detach(ctx, attachments, "user_id", user.id, p["PolicyArn"])
    return {}


@operation("iam", "ListAttachedUserPolicies")
def list_attached_user_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    return iam_attachments.list_attached(ctx, attachments, "user_id", user.id, p)
