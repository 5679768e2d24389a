"""A user's permissions: inline policies and attached managed policies."""

from __future__ import annotations

from typing import Any

from roleport.auth.request_keys import POLICY_ARN
from roleport.auth.resources import user_named
from roleport.context import Ctx, Params
from roleport.services import iam_attachments
from roleport.services.iam_users import find_user
from roleport.services.registry import operation
from roleport.store import schema

inline = schema.user_inline_policies
attachments = schema.user_policy_attachments
policies = schema.policies

# IAM quotas page: a user's inline policies may total 2,048 characters, white space not counted; AWS reports it as
# "Maximum policy size of 2048 bytes exceeded for user NAME" (LimitExceeded, 409).
USER_INLINE_POLICY_SIZE = 2048
# IAM quotas page: "Managed policies attached to an IAM user: 10" (AWS answers "Cannot exceed quota for
# PoliciesPerUser: 10"). Adjustable in AWS up to 20, but roleport offers no knob for it yet.
MANAGED_POLICIES_PER_USER = 10


@operation("iam", "PutUserPolicy", resource=user_named())
def put_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"], lock=True)
    iam_attachments.put_inline(ctx, inline, "user_id", user, "user", p, USER_INLINE_POLICY_SIZE)
    return {}


@operation("iam", "GetUserPolicy", resource=user_named())
def get_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    document = iam_attachments.get_inline(ctx, inline, "user_id", user.id, "user", p["PolicyName"])
    return {"UserName": user.name, "PolicyName": p["PolicyName"], "PolicyDocument": document}


@operation("iam", "DeleteUserPolicy", resource=user_named())
def delete_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    iam_attachments.delete_inline(ctx, inline, "user_id", user.id, "user", p["PolicyName"])
    return {}


@operation("iam", "ListUserPolicies", resource=user_named())
def list_user_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    return iam_attachments.list_inline(ctx, inline, "user_id", user.id, p)


@operation("iam", "AttachUserPolicy", resource=user_named(), condition_keys=(POLICY_ARN,))
def attach_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"], lock=True)
    quota = MANAGED_POLICIES_PER_USER
    iam_attachments.attach(ctx, attachments, "user_id", user.id, p["PolicyArn"], quota, "PoliciesPerUser")
    return {}


@operation("iam", "DetachUserPolicy", resource=user_named(), condition_keys=(POLICY_ARN,))
def detach_user_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    iam_attachments.detach(ctx, attachments, "user_id", user.id, p["PolicyArn"])
    return {}


@operation("iam", "ListAttachedUserPolicies", resource=user_named())
def list_attached_user_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = find_user(ctx.tx, ctx.account_id, p["UserName"])
    return iam_attachments.list_attached(ctx, attachments, "user_id", user.id, p)
