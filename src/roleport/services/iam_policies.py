"""Managed policies: customer managed ones and their versions, and AWS's catalogue under arn:aws:iam::aws:policy/."""

from __future__ import annotations

from typing import Any

import regex
from sqlalchemy import delete, exists, func, select, update

from roleport import ids
from roleport.auth import policy_document
from roleport.auth.request_keys import REQUEST_TAGS
from roleport.auth.resources import ANY, policy_arn, policy_named
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups, iam_tags
from roleport.services.registry import operation
from roleport.store import counters, paging, schema
from roleport.store.db import Row, Tx
from roleport.store.seed import AWS_ACCOUNT

policies = schema.policies
versions = schema.policy_versions
attachments = schema.role_policy_attachments
user_attachments = schema.user_policy_attachments

_POLICY_ARN = regex.compile(r"arn:aws:iam::(aws|\d{12}):policy(/[\x21-\x7e]*)?/[\w+=,.@-]+")


def _no_such_policy(arn: str) -> AwsError:
    return AwsError("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.")


def find_policy(ctx: Ctx, arn: str, *, lock: bool = False, shared: bool = False) -> Row:
    """The policy; with lock, held for the rest of the transaction (iam_lookups.locked) and read as it then is, for
    calls that change its versions or delete it; with shared too, only kept from being deleted, for attaching it."""
    if not _POLICY_ARN.fullmatch(arn):
        raise AwsError("InvalidInput", f"ARN {arn} is not valid.")
    row = ctx.tx.execute(select(policies).where(policies.c.arn == arn)).first()
    visible = row is not None and row.account_id in (AWS_ACCOUNT, ctx.account_id)
    if row is None or not visible:
        raise _no_such_policy(arn)
    # AWS's own policies never change or go (UnmodifiableEntity), so there is nothing to wait for.
    if not lock or row.account_id == AWS_ACCOUNT:
        return row
    return iam_lookups.locked(ctx.tx, policies, row, lambda: _no_such_policy(arn), shared=shared)


def default_document(ctx: Ctx, policy: Row) -> str:
    """The document of a policy's default version."""
    query = select(versions.c.document).where(
        versions.c.policy_id == policy.id, versions.c.version_id == policy.default_version_id
    )
    return str(ctx.tx.execute(query).scalar_one())


def _customer_policy(ctx: Ctx, arn: str) -> Row:
    """A policy of the account's own, held (find_policy's lock): every caller changes it or its versions."""
    row = find_policy(ctx, arn)
    if row.account_id == AWS_ACCOUNT:
        raise AwsError("UnmodifiableEntity", f"Policy {arn} is an AWS managed policy and cannot be changed.")
    return iam_lookups.locked(ctx.tx, policies, row, lambda: _no_such_policy(arn))


def policy_out(tx: Tx, row: Row, *, tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    attached = tx.execute(
        select(
            select(func.count()).select_from(attachments).where(attachments.c.policy_id == row.id).scalar_subquery()
            + select(func.count())
            .select_from(user_attachments)
            .where(user_attachments.c.policy_id == row.id)
            .scalar_subquery()
        )
    )
    out: dict[str, Any] = {
        "PolicyName": row.name,
        "PolicyId": row.id,
        "Arn": row.arn,
        "Path": row.path,
        "DefaultVersionId": row.default_version_id,
        "AttachmentCount": attached.scalar_one(),
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": row.is_attachable,
        "Description": row.description,
        "CreateDate": row.create_date,
        "UpdateDate": row.update_date,
    }
    if tags:
        out["Tags"] = tags
    return out


def _version_out(row: Row, default_version_id: str, *, document: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "VersionId": row.version_id,
        "IsDefaultVersion": row.version_id == default_version_id,
        "CreateDate": row.create_date,
    }
    if document:
        out["Document"] = row.document
    return out


@operation("iam", "CreatePolicy", resource=policy_named(), condition_keys=(REQUEST_TAGS,))
def create_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    policy_document.parse(p["PolicyDocument"])
    quota = ctx.settings.quotas.customer_managed_policies_per_account
    full = AwsError("LimitExceeded", f"Cannot exceed quota for PoliciesPerAccount: {quota}.")
    counters.claim(ctx.tx, "policies", ctx.account_id, quota, full)
    name, path = p["PolicyName"], p.get("Path", "/")
    policy_id = ids.unique_id(ids.POLICY_PREFIX)
    statement = policies.insert().values(
        id=policy_id,
        account_id=ctx.account_id,
        arn=ids.iam_arn(ctx.account_id, "policy", path, name),
        name=name,
        name_key=name.lower(),
        path=path,
        description=p.get("Description"),
        create_date=ctx.now,
        update_date=ctx.now,
        default_version_id="v1",
        next_version=2,
        is_attachable=True,
    )
    duplicate = AwsError(
        "EntityAlreadyExists", f"A policy called {name} already exists. Duplicate names are not allowed."
    )
    ctx.tx.insert_unique(statement, None, duplicate)
    ctx.tx.execute(
        versions.insert().values(
            policy_id=policy_id, version_id="v1", version_number=1, document=p["PolicyDocument"], create_date=ctx.now
        )
    )
    quota_tags = ctx.settings.quotas.tags_per_resource
    iam_tags.put_tags(ctx.tx, schema.policy_tags, policy_id, p.get("Tags", []), "TagsPerPolicy", quota_tags)
    row = ctx.tx.execute(select(policies).where(policies.c.id == policy_id)).one()
    return {"Policy": policy_out(ctx.tx, row, tags=iam_tags.tags_of(ctx.tx, schema.policy_tags, policy_id))}


@operation("iam", "GetPolicy", resource=policy_arn())
def get_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_policy(ctx, p["PolicyArn"])
    return {"Policy": policy_out(ctx.tx, row, tags=iam_tags.tags_of(ctx.tx, schema.policy_tags, row.id))}


@operation("iam", "ListPolicyTags", resource=policy_arn())
def list_policy_tags(ctx: Ctx, p: Params) -> dict[str, Any]:
    # AWS's own policies carry no tags, so theirs is an empty list.
    row = find_policy(ctx, p["PolicyArn"])
    return iam_tags.list_tags(ctx.tx, schema.policy_tags, row.id, p)


@operation("iam", "ListPolicies", resource=ANY)
def list_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    scope = p.get("Scope", "All")
    owners = {"All": [AWS_ACCOUNT, ctx.account_id], "AWS": [AWS_ACCOUNT], "Local": [ctx.account_id]}[scope]
    query = select(policies).where(policies.c.account_id.in_(owners))
    prefix = iam_lookups.path_filter(policies.c.path, p.get("PathPrefix"))
    if prefix is not None:
        query = query.where(prefix)
    if p.get("OnlyAttached"):
        query = query.where(
            exists().where(attachments.c.policy_id == policies.c.id)
            | exists().where(user_attachments.c.policy_id == policies.c.id)
        )
    if p.get("PolicyUsageFilter") == "PermissionsBoundary":
        boundaries = select(schema.roles.c.permissions_boundary).where(schema.roles.c.account_id == ctx.account_id)
        query = query.where(policies.c.arn.in_(boundaries))
    marker, limit = iam_lookups.page_params(p)
    page = paging.page(ctx.tx, query, [policies.c.name_key, policies.c.arn], marker, limit)
    return iam_lookups.paged(page, "Policies", [policy_out(ctx.tx, row) for row in page[0]])


@operation("iam", "DeletePolicy", resource=policy_arn())
def delete_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = _customer_policy(ctx, p["PolicyArn"])
    held = exists().where(attachments.c.policy_id == row.id) | exists().where(user_attachments.c.policy_id == row.id)
    if ctx.tx.execute(select(held)).scalar():
        raise AwsError("DeleteConflict", "Cannot delete a policy attached to entities.")
    others = ctx.tx.execute(
        select(func.count()).select_from(versions).where(versions.c.policy_id == row.id)
    ).scalar_one()
    if others > 1:
        raise AwsError(
            "DeleteConflict",
            "This policy has more than one version. Before you delete a policy, you must delete the policy's "
            "versions. The default version is deleted with the policy.",
        )
    ctx.tx.execute(delete(policies).where(policies.c.id == row.id))
    counters.release(ctx.tx, "policies", ctx.account_id)
    return {}


@operation("iam", "GetPolicyVersion", resource=policy_arn())
def get_policy_version(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_policy(ctx, p["PolicyArn"])
    version = ctx.tx.execute(
        select(versions).where(versions.c.policy_id == row.id, versions.c.version_id == p["VersionId"])
    ).first()
    if version is None:
        raise AwsError(
            "NoSuchEntity", f"Policy {row.arn} version {p['VersionId']} does not exist or is not attachable."
        )
    return {"PolicyVersion": _version_out(version, row.default_version_id, document=True)}


@operation("iam", "CreatePolicyVersion", resource=policy_arn())
def create_policy_version(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = _customer_policy(ctx, p["PolicyArn"])
    policy_document.parse(p["PolicyDocument"])
    quota = ctx.settings.quotas.policy_versions
    count = ctx.tx.execute(select(func.count()).select_from(versions).where(versions.c.policy_id == row.id))
    if count.scalar_one() >= quota:
        raise AwsError(
            "LimitExceeded",
            f"A managed policy can have up to {quota} versions. Before you create a new version, you must delete "
            "an existing version.",
        )
    number = row.next_version
    version_id = f"v{number}"
    ctx.tx.execute(
        versions.insert().values(
            policy_id=row.id,
            version_id=version_id,
            version_number=number,
            document=p["PolicyDocument"],
            create_date=ctx.now,
        )
    )
    changes: dict[str, Any] = {"next_version": number + 1, "update_date": ctx.now}
    if p.get("SetAsDefault"):
        changes["default_version_id"] = version_id
    ctx.tx.execute(update(policies).where(policies.c.id == row.id).values(changes))
    default = changes.get("default_version_id", row.default_version_id)
    version = ctx.tx.execute(
        select(versions).where(versions.c.policy_id == row.id, versions.c.version_number == number)
    ).one()
    return {"PolicyVersion": _version_out(version, default, document=False)}


@operation("iam", "ListPolicyVersions", resource=policy_arn())
def list_policy_versions(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_policy(ctx, p["PolicyArn"])
    # At most five versions exist (the versions quota), so one page always holds them all; newest first, as IAM lists.
    query = select(versions).where(versions.c.policy_id == row.id).order_by(versions.c.version_number.desc())
    rows = ctx.tx.execute(query)
    return {
        "Versions": [_version_out(version, row.default_version_id, document=False) for version in rows],
        "IsTruncated": False,
    }


@operation("iam", "DeletePolicyVersion", resource=policy_arn())
def delete_policy_version(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = _customer_policy(ctx, p["PolicyArn"])
    if p["VersionId"] == row.default_version_id:
        raise AwsError("DeleteConflict", "Cannot delete the default version of a policy.")
    removed = ctx.tx.execute(
        delete(versions).where(versions.c.policy_id == row.id, versions.c.version_id == p["VersionId"])
    )
    if removed.rowcount == 0:
        raise AwsError(
            "NoSuchEntity", f"Policy {row.arn} version {p['VersionId']} does not exist or is not attachable."
        )
    return {}


@operation("iam", "SetDefaultPolicyVersion", resource=policy_arn())
def set_default_policy_version(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = _customer_policy(ctx, p["PolicyArn"])
    found = ctx.tx.execute(
        select(versions.c.version_id).where(versions.c.policy_id == row.id, versions.c.version_id == p["VersionId"])
    ).first()
    if found is None:
        raise AwsError(
            "NoSuchEntity", f"Policy {row.arn} version {p['VersionId']} does not exist or is not attachable."
        )
    ctx.tx.execute(
        update(policies).where(policies.c.id == row.id).values(default_version_id=p["VersionId"], update_date=ctx.now)
    )
    return {}
