"""Access keys: the long-term AKIA… credentials of IAM users, created, listed, switched on and off, and deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from roleport import ids
from roleport.auth.resources import key_owner, user_named
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups
from roleport.services.iam_users import lock_user, target_user
from roleport.services.registry import operation
from roleport.store import paging, schema
from roleport.store.db import Prepared, Row

keys = schema.access_keys
users = schema.users

# IAM quotas page: "Access keys assigned to an IAM user: 2", not adjustable; the message is AWS's recorded answer.
ACCESS_KEYS_PER_USER = 2


# The root user's key pair is the server's own (--root-access-key/--root-secret-key), not a row in the store, so the
# API can list it but not create, switch or delete root keys as AWS would.
def _root_keys() -> AwsError:
    return AwsError(
        "NotImplemented",
        "roleport does not manage the root user's access keys; set them with --root-access-key and --root-secret-key.",
        status=501,
    )


_KEY_WITH_OWNER = Prepared(
    select(keys.c.id, keys.c.status, keys.c.last_used, users.c.name, users.c.account_id)
    .join(users, users.c.id == keys.c.user_id)
    .where(keys.c.id == bindparam("id"))
)


def _metadata_out(row: Row, user: Row) -> dict[str, Any]:
    return {"UserName": user.name, "AccessKeyId": row.id, "Status": row.status, "CreateDate": row.create_date}


def _no_such_key(key_id: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.")


def _key_owner(ctx: Ctx, p: Params) -> Row:
    """The user that owns AccessKeyId, which must be the one named or else the caller; anyone else's key is "not
    found"."""
    user = target_user(ctx, p.get("UserName"))
    key_id = p["AccessKeyId"]
    if user is None:
        raise _root_keys() if key_id == ctx.settings.root_access_key else _no_such_key(key_id)
    found = ctx.tx.execute(select(keys.c.id).where(keys.c.id == key_id, keys.c.user_id == user.id)).first()
    if found is None:
        raise _no_such_key(key_id)
    return user


@operation("iam", "CreateAccessKey", resource=user_named(default_to_caller=True))
def create_access_key(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = target_user(ctx, p.get("UserName"))
    if user is None:
        raise _root_keys()
    user = lock_user(ctx.tx, user)  # so two concurrent calls cannot both see one key and make a third
    count = ctx.tx.execute(select(func.count()).select_from(keys).where(keys.c.user_id == user.id)).scalar_one()
    if count >= ACCESS_KEYS_PER_USER:
        raise AwsError("LimitExceeded", f"Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}")
    key_id, secret = ids.access_key_id(), ids.secret_access_key()
    ctx.tx.execute(
        keys.insert().values(id=key_id, user_id=user.id, secret=secret, status="Active", create_date=ctx.now)
    )
    # The only time AWS returns the secret (CreateAccessKey reference); nothing else reads it back out.
    return {
        "AccessKey": {
            "UserName": user.name,
            "AccessKeyId": key_id,
            "Status": "Active",
            "SecretAccessKey": secret,
            "CreateDate": ctx.now,
        }
    }


@operation("iam", "ListAccessKeys", resource=user_named(default_to_caller=True))
def list_access_keys(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = target_user(ctx, p.get("UserName"))
    if user is None:
        # The root key carries no UserName in AWS's listings (aws-sdk-ruby#677: "unless this is a root key").
        return {
            "AccessKeyMetadata": [{"AccessKeyId": ctx.settings.root_access_key, "Status": "Active"}],
            "IsTruncated": False,
        }
    marker, limit = iam_lookups.page_params(p)
    query = select(keys.c.id, keys.c.status, keys.c.create_date).where(keys.c.user_id == user.id)
    page = paging.page(ctx.tx, query, [keys.c.id], marker, limit)
    return iam_lookups.paged(page, "AccessKeyMetadata", [_metadata_out(row, user) for row in page[0]])


@operation("iam", "UpdateAccessKey", resource=user_named(default_to_caller=True))
def update_access_key(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = _key_owner(ctx, p)
    status = p["Status"]
    if status not in ("Active", "Inactive"):
        # The model's enum also lists Expired, which only AWS sets; a caller may choose Active or Inactive
        # (UpdateAccessKey reference).
        raise AwsError("InvalidInput", f"Access key status {status} cannot be set; use Active or Inactive.")
    ctx.tx.execute(update(keys).where(keys.c.id == p["AccessKeyId"], keys.c.user_id == user.id).values(status=status))
    return {}


@operation("iam", "DeleteAccessKey", resource=user_named(default_to_caller=True))
def delete_access_key(ctx: Ctx, p: Params) -> dict[str, Any]:
    user = _key_owner(ctx, p)
    ctx.tx.execute(delete(keys).where(keys.c.id == p["AccessKeyId"], keys.c.user_id == user.id))
    return {}


@operation("iam", "GetAccessKeyLastUsed", resource=key_owner())
def get_access_key_last_used(ctx: Ctx, p: Params) -> dict[str, Any]:
    key_id = p["AccessKeyId"]
    if key_id == ctx.settings.root_access_key:
        return {"AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}
    row = ctx.tx.execute(_KEY_WITH_OWNER, {"id": key_id}).first()
    if row is None or row.account_id != ctx.account_id:
        # AWS does not say "not found" here: it answers as if the caller lacked permission on the key (recorded
        # answer for an unknown key id), which also hides whether another account owns it.
        raise AwsError(
            "AccessDenied",
            f"User: {ctx.principal.arn} is not authorized to perform iam:GetAccessKeyLastUsed on resource: "
            f"access key {key_id}",
            status=403,
        )
    # ServiceName and Region are "N/A" until the key is used (GetAccessKeyLastUsed reference); roleport records only
    # when a key was last used, not where.
    last_used: dict[str, Any] = {"ServiceName": "N/A", "Region": "N/A"}
    if row.last_used is not None:
        last_used["LastUsedDate"] = row.last_used
    return {"UserName": row.name, "AccessKeyLastUsed": last_used}
