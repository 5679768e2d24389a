"""IAM users: create, read, list, rename, delete and user tags; who "the calling user" is when a name is left out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, exists, select, update

from roleport import ids
from roleport.auth.request_keys import PERMISSIONS_BOUNDARY, REQUEST_TAGS, TAG_KEYS
from roleport.auth.resources import LISTING_BY_PATH, path_listing, user_named
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups, iam_tags
from roleport.services.registry import operation
from roleport.store import counters, schema
from roleport.store.db import Prepared, Row, Tx

users = schema.users
user_tags = schema.user_tags

# IAM quotas page: "IAM users per account: 5000", not adjustable; the message is AWS's (seen in cloud-credential-
# operator reports of real LimitExceeded answers).
USERS_PER_ACCOUNT = 5000

_USER_BY_NAME = Prepared(
    select(users).where(users.c.account_id == bindparam("account"), users.c.name_key == bindparam("key"))
)
_USER_BY_ID = Prepared(select(users).where(users.c.id == bindparam("id")))
_TAGS = Prepared(
    select(user_tags.c.key, user_tags.c.value)
    .where(user_tags.c.owner_id == bindparam("owner"))
    .order_by(user_tags.c.key)
)


def _no_such_user(name: str) -> AwsError:
    return AwsError("NoSuchEntity", f"The user with name {name} cannot be found.")


def find_user(tx: Tx, account_id: str, name: str, *, lock: bool = False) -> Row:
    """The user; with lock, held for the rest of the transaction (iam_lookups.locked), for calls that change what it
    owns (its keys, tags and policies) or delete it."""
    row = tx.execute(_USER_BY_NAME, {"account": account_id, "key": name.lower()}).first()
    if row is None:
        raise _no_such_user(name)
    return lock_user(tx, row) if lock else row


def lock_user(tx: Tx, row: Row) -> Row:
    """Hold the user's row for the rest of the transaction; it may have been deleted since it was read."""
    return iam_lookups.locked(tx, users, row, lambda: _no_such_user(row.name))


def target_user(ctx: Ctx, name: str | None) -> Row | None:
    """The user an operation names or, without a name, the IAM user whose key signed the request (GetUser,
    CreateAccessKey, ListAccessKeys… references: "IAM determines the user name implicitly based on the access key ID
    used to sign the request"). None means the root user, whose own credentials are then meant."""
    if name is not None:
        return find_user(ctx.tx, ctx.account_id, name)
    principal = ctx.principal
    if principal.kind == "root":
        return None
    if principal.kind == "user":
        row = ctx.tx.execute(_USER_BY_ID, {"id": principal.user_id}).first()
        if row is None:
            raise _no_such_user(principal.arn.rsplit("/", 1)[-1])
        return row
    # Role sessions are not IAM users: AWS answers this ValidationError (seen for GetUser, ListAccessKeys and
    # DeleteAccessKey called with assumed-role credentials).
    raise AwsError("ValidationError", "Must specify userName when calling with non-User credentials", status=400)


def tags_of(tx: Tx, user_id: str) -> list[dict[str, str]]:
    return [{"Key": row.key, "Value": row.value} for row in tx.execute(_TAGS, {"owner": user_id})]


def user_out(row: Row, *, tags: list[dict[str, str]] | None = None, full: bool = False) -> dict[str, Any]:
    """A User as IAM sends it. ListUsers omits PermissionsBoundary and Tags (ListUsers reference); GetUser
    (full=True) carries them. PasswordLastUsed is absent because roleport users have no console password, which is
    how IAM shows a user that never signed in with one."""
    out: dict[str, Any] = {
        "Path": row.path,
        "UserName": row.name,
        "UserId": row.id,
        "Arn": ids.iam_arn(row.account_id, "user", row.path, row.name),
        "CreateDate": row.create_date,
    }
    if full and row.permissions_boundary:
        out["PermissionsBoundary"] = {
            "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
            "PermissionsBoundaryArn": row.permissions_boundary,
        }
    if tags:
        out["Tags"] = tags
    return out


def _root_out(ctx: Ctx) -> dict[str, Any]:
    # GetUser signed by the root user describes the account: UserId is the account id and the ARN ends in ":root",
    # with no UserName or Path (real responses quoted in brendanhay/amazonka#102 and 99designs/aws-vault#152).
    # CreateDate would be the account's creation, which roleport does not record, so it is left out too.
    return {"UserId": ctx.account_id, "Arn": ctx.principal.arn}


@operation("iam", "CreateUser", resource=user_named(), condition_keys=(REQUEST_TAGS, PERMISSIONS_BOUNDARY))
def create_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    iam_lookups.check_boundary(ctx.tx, p.get("PermissionsBoundary"))
    full = AwsError("LimitExceeded", f"Cannot exceed quota for UsersPerAccount: {USERS_PER_ACCOUNT}")
    counters.claim(ctx.tx, "users", ctx.account_id, USERS_PER_ACCOUNT, full)
    name = p["UserName"]
    user_id = ids.unique_id(ids.USER_PREFIX)
    statement = users.insert().values(
        id=user_id,
        account_id=ctx.account_id,
        name=name,
        name_key=name.lower(),
        path=p.get("Path", "/"),
        create_date=ctx.now,
        permissions_boundary=p.get("PermissionsBoundary"),
    )
    ctx.tx.insert_unique(statement, None, AwsError("EntityAlreadyExists", f"User with name {name} already exists."))
    quota = ctx.settings.quotas.tags_per_resource
    iam_tags.put_tags(ctx.tx, user_tags, user_id, p.get("Tags", []), "TagsPerUser", quota)
    row = ctx.tx.execute(_USER_BY_ID, {"id": user_id}).one()
    return {"User": user_out(row, tags=tags_of(ctx.tx, user_id), full=True)}


@operation("iam", "GetUser", resource=user_named(default_to_caller=True))
def get_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = target_user(ctx, p.get("UserName"))
    if row is None:
        return {"User": _root_out(ctx)}
    return {"User": user_out(row, tags=tags_of(ctx.tx, row.id), full=True)}


@operation("iam", "ListUsers", resource=path_listing("user"), deviation=LISTING_BY_PATH)
def list_users(ctx: Ctx, p: Params) -> dict[str, Any]:
    return iam_lookups.list_by_path(ctx.tx, users, ctx.account_id, p, "Users", user_out)


@operation("iam", "UpdateUser", resource=user_named())
def update_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_user(ctx.tx, ctx.account_id, p["UserName"])
    changes: dict[str, Any] = {}
    if "NewPath" in p:
        changes["path"] = p["NewPath"]
    new_name = p.get("NewUserName")
    if new_name is not None:
        changes.update(name=new_name, name_key=new_name.lower())
    if changes:
        # A rename keeps the user's id, keys and policies (UpdateUser reference); the unique name index refuses a
        # name another user holds, in any case.
        taken = AwsError("EntityAlreadyExists", f"User with name {new_name} already exists.")
        ctx.tx.insert_unique(update(users).where(users.c.id == row.id).values(changes), None, taken)
    return {}


@operation("iam", "DeleteUser", resource=user_named())
def delete_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_user(ctx.tx, ctx.account_id, p["UserName"], lock=True)
    # DeleteUser reference: access keys, inline policies and attached policies must go first, in that order of its
    # list; the messages are AWS's DeleteConflict texts.
    conflicts = (
        (schema.access_keys, "Cannot delete entity, must delete access keys first."),
        (schema.user_inline_policies, "Cannot delete entity, must delete policies first."),
        (schema.user_policy_attachments, "Cannot delete entity, must detach all policies first."),
    )
    for table, message in conflicts:
        if ctx.tx.execute(select(exists().where(table.c.user_id == row.id))).scalar():
            raise AwsError("DeleteConflict", message)
    ctx.tx.execute(delete(users).where(users.c.id == row.id))
    counters.release(ctx.tx, "users", ctx.account_id)
    return {}


@operation("iam", "TagUser", resource=user_named(), condition_keys=(REQUEST_TAGS,))
def tag_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_user(ctx.tx, ctx.account_id, p["UserName"], lock=True)
    quota = ctx.settings.quotas.tags_per_resource
    iam_tags.put_tags(ctx.tx, user_tags, row.id, p["Tags"], "TagsPerUser", quota)
    return {}


@operation("iam", "UntagUser", resource=user_named(), condition_keys=(TAG_KEYS,))
def untag_user(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_user(ctx.tx, ctx.account_id, p["UserName"])
    iam_tags.remove_tags(ctx.tx, user_tags, row.id, p["TagKeys"])
    return {}


@operation("iam", "ListUserTags", resource=user_named())
def list_user_tags(ctx: Ctx, p: Params) -> dict[str, Any]:
    row = find_user(ctx.tx, ctx.account_id, p["UserName"])
    return iam_tags.list_tags(ctx.tx, user_tags, row.id, p)
