"""IAM roles: create, read, list, update, delete, trust policy and tags."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, select, update

from roleport import ids
from roleport.auth import policy_document
from roleport.auth.request_keys import PERMISSIONS_BOUNDARY, REQUEST_TAGS, TAG_KEYS
from roleport.auth.resources import LISTING_BY_PATH, path_listing, role_named
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups, iam_tags
from roleport.services.iam_lookups import find_role
from roleport.services.registry import operation
from roleport.store import counters, schema
from roleport.store.db import Row

roles = schema.roles


def role_out(row: Row, *, tags: list[dict[str, str]] | None = None, full: bool = False) -> dict[str, Any]:
    """A Role as IAM sends it. List views omit Tags, PermissionsBoundary and RoleLastUsed (ListRoles reference);
    GetRole (full=True) carries them all."""
    out: dict[str, Any] = {
        "Path": row.path,
        "RoleName": row.name,
        "RoleId": row.id,
        "Arn": ids.iam_arn(row.account_id, "role", row.path, row.name),
        "CreateDate": row.create_date,
        "AssumeRolePolicyDocument": row.trust_policy,
        "Description": row.description,
        "MaxSessionDuration": row.max_session_duration,
    }
    if full:
        out.update(_boundary(row))
    if tags:
        out["Tags"] = tags
    if full:
        out["RoleLastUsed"] = {}
    return out


def _boundary(row: Row) -> dict[str, Any]:
    if not row.permissions_boundary:
        return {}
    return {
        "PermissionsBoundary": {
            "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
            "PermissionsBoundaryArn": row.permissions_boundary,
        }
    }


@operation("iam", "CreateRole", resource=role_named(), condition_keys=(REQUEST_TAGS, PERMISSIONS_BOUNDARY))
def create_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    policy_document.parse(p["AssumeRolePolicyDocument"], trust=True)
    iam_lookups.check_boundary(ctx.tx, p.get("PermissionsBoundary"))
    quota = ctx.settings.quotas.roles_per_account
    full = AwsError("LimitExceeded", f"Cannot exceed quota for RolesPerAccount: {quota}.")
    counters.claim(ctx.tx, "roles", ctx.account_id, quota, full)
    name = p["RoleName"]
    values = {
        "id": ids.unique_id(ids.ROLE_PREFIX),
        "account_id": ctx.account_id,
        "name": name,
        "name_key": name.lower(),
        "path": p.get("Path", "/"),
        "create_date": ctx.now,
        "trust_policy": p["AssumeRolePolicyDocument"],
        "description": p.get("Description"),
        "max_session_duration": p.get("MaxSessionDuration", 3600),
        "permissions_boundary": p.get("PermissionsBoundary"),
    }
    ctx.tx.insert_unique(
        roles.insert().values(values), None, AwsError("EntityAlreadyExists", f"Role with name {name} already exists.")
    )
    tags = p.get("Tags", [])
    iam_tags.put_tags(
        ctx.tx, schema.role_tags, values["id"], tags, "TagsPerRole", ctx.settings.quotas.tags_per_resource
    )
    row = find_role(ctx.tx, ctx.account_id, name)
    return {"Role": role_out(row, tags=iam_tags.tags_of(ctx.tx, schema.role_tags, row.id)) | _boundary(row)}


@operation("iam", "GetRole", resource=role_named())
def get_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return {"Role": role_out(row, tags=iam_tags.tags_of(ctx.tx, schema.role_tags, row.id), full=True)}


@operation("iam", "ListRoles", resource=path_listing("role"), deviation=LISTING_BY_PATH)
def list_roles(ctx: Ctx, p: Params) -> dict[str, Any]:
    return iam_lookups.list_by_path(ctx.tx, roles, ctx.account_id, p, "Roles", role_out)


@operation("iam", "UpdateRole", resource=role_named())
def update_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    changes = {}
    if "Description" in p:
        changes["description"] = p["Description"]
    if "MaxSessionDuration" in p:
        changes["max_session_duration"] = p["MaxSessionDuration"]
    if changes:
        ctx.tx.execute(update(roles).where(roles.c.id == row.id).values(changes))
    return {}


@operation("iam", "UpdateRoleDescription", resource=role_named())
def update_role_description(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    ctx.tx.execute(update(roles).where(roles.c.id == row.id).values(description=p["Description"]))
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return {"Role": role_out(row, tags=iam_tags.tags_of(ctx.tx, schema.role_tags, row.id), full=True)}


@operation("iam", "UpdateAssumeRolePolicy", resource=role_named())
def update_assume_role_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    policy_document.parse(p["PolicyDocument"], trust=True)
    ctx.tx.execute(update(roles).where(roles.c.id == row.id).values(trust_policy=p["PolicyDocument"]))
    return {}


@operation("iam", "DeleteRole", resource=role_named())
def delete_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    # Held, so no policy, tag or profile can arrive between the checks and the delete (to be cascaded away, or to
    # fail on its foreign key).
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"], lock=True)
    # DeleteRole reference: the role must first leave its instance profiles and lose its policies.
    conflicts = (
        (schema.profile_roles, "Cannot delete entity, must remove roles from instance profile first."),
        (schema.role_policy_attachments, "Cannot delete entity, must detach all policies first."),
        (schema.role_inline_policies, "Cannot delete entity, must delete policies first."),
    )
    for table, message in conflicts:
        if ctx.tx.execute(select(exists().where(table.c.role_id == row.id))).scalar():
            raise AwsError("DeleteConflict", message)
    ctx.tx.execute(delete(roles).where(roles.c.id == row.id))
    counters.release(ctx.tx, "roles", ctx.account_id)
    return {}


@operation("iam", "TagRole", resource=role_named(), condition_keys=(REQUEST_TAGS,))
def tag_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"], lock=True)
    quota = ctx.settings.quotas.tags_per_resource
    iam_tags.put_tags(ctx.tx, schema.role_tags, row.id, p["Tags"], "TagsPerRole", quota)
    return {}


@operation("iam", "UntagRole", resource=role_named(), condition_keys=(TAG_KEYS,))
def untag_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    iam_tags.remove_tags(ctx.tx, schema.role_tags, row.id, p["TagKeys"])
    return {}


@operation("iam", "ListRoleTags", resource=role_named())
def list_role_tags(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    return iam_tags.list_tags(ctx.tx, schema.role_tags, row.id, p)
