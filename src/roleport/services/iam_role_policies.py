"""A role's permissions: inline policies and attached managed policies."""

from __future__ import annotations

from typing import Any

from roleport.auth.request_keys import POLICY_ARN
from roleport.auth.resources import role_named
from roleport.context import Ctx, Params
from roleport.services import iam_attachments
from roleport.services.iam_lookups import find_role
from roleport.services.registry import operation
from roleport.store import schema

inline = schema.role_inline_policies
attachments = schema.role_policy_attachments
policies = schema.policies

# IAM quotas: a role's inline policies may total 10,240 characters, white space not counted.
ROLE_INLINE_POLICY_SIZE = 10240


@operation("iam", "PutRolePolicy", resource=role_named())
def put_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"], lock=True)
    iam_attachments.put_inline(ctx, inline, "role_id", role, "role", p, ROLE_INLINE_POLICY_SIZE)
    return {}


@operation("iam", "GetRolePolicy", resource=role_named())
def get_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    document = iam_attachments.get_inline(ctx, inline, "role_id", role.id, "role", p["PolicyName"])
    return {"RoleName": role.name, "PolicyName": p["PolicyName"], "PolicyDocument": document}


@operation("iam", "DeleteRolePolicy", resource=role_named())
def delete_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    iam_attachments.delete_inline(ctx, inline, "role_id", role.id, "role", p["PolicyName"])
    return {}


@operation("iam", "ListRolePolicies", resource=role_named())
def list_role_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return iam_attachments.list_inline(ctx, inline, "role_id", role.id, p)


@operation("iam", "AttachRolePolicy", resource=role_named(), condition_keys=(POLICY_ARN,))
def attach_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"], lock=True)
    quota = ctx.settings.quotas.managed_policies_per_role
    iam_attachments.attach(ctx, attachments, "role_id", role.id, p["PolicyArn"], quota, "PoliciesPerRole")
    return {}


@operation("iam", "DetachRolePolicy", resource=role_named(), condition_keys=(POLICY_ARN,))
def detach_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    iam_attachments.detach(ctx, attachments, "role_id", role.id, p["PolicyArn"])
    return {}


@operation("iam", "ListAttachedRolePolicies", resource=role_named())
def list_attached_role_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return iam_attachments.list_attached(ctx, attachments, "role_id", role.id, p)
