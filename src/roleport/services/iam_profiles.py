"""IAM instance profiles: create, read, list, the one role they hold, tags, delete."""

from __future__ import annotations

from collections import defaultdict, namedtuple
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, delete, select

from roleport import ids
from roleport.auth.request_keys import REQUEST_TAGS, TAG_KEYS
from roleport.auth.resources import LISTING_BY_PATH, path_listing, profile_named, role_named
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups, iam_tags
from roleport.services.iam_lookups import find_profile, find_role
from roleport.services.iam_roles import role_out
from roleport.services.registry import operation
from roleport.store import counters, paging, schema, sql
from roleport.store.db import Prepared, Row

profiles = schema.instance_profiles
profile_roles = schema.profile_roles

# AddRoleToInstanceProfile reference: an instance profile can contain only one role, and the quota is not adjustable.
FULL_PROFILE = "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1"


def profile_out(row: Row, roles: list[Row], tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An InstanceProfile as IAM sends it; list views pass no tags (ListInstanceProfiles omits them)."""
    out: dict[str, Any] = {
        "Path": row.path,
        "InstanceProfileName": row.name,
        "InstanceProfileId": row.id,
        "Arn": ids.iam_arn(row.account_id, "instance-profile", row.path, row.name),
        "CreateDate": row.create_date,
        "Roles": [role_out(role) for role in roles],
    }
    if tags:
        out["Tags"] = tags
    return out


_INSERT_PROFILE = Prepared(
    profiles.insert().values(
        {column: bindparam(column) for column in ("id", "account_id", "name", "name_key", "path", "create_date")}
    )
)
# GetInstanceProfile in one statement: the profile, its role (at most one: profile_roles is keyed by profile) and its
# tags, outer-joined, so a profile with n tags comes back as n rows (one without tags). Three lookups cost three
# round trips through the driver, which is most of what this call costs. Only the columns profile_out and role_out
# read are selected.
_PROFILE_FIELDS = ("id", "account_id", "name", "path", "create_date")
_ROLE_FIELDS = (
    "id",
    "account_id",
    "name",
    "path",
    "create_date",
    "trust_policy",
    "description",
    "max_session_duration",
)
_RoleRow = namedtuple("_RoleRow", _ROLE_FIELDS)  # type: ignore[misc]
_ROLE_AT = len(_PROFILE_FIELDS)
_ROLE_END = _ROLE_AT + len(_ROLE_FIELDS)
_PROFILE_WHOLE_QUERY = (
    select(
        *(profiles.c[name] for name in _PROFILE_FIELDS),
        *(schema.roles.c[name].label(f"role_{name}") for name in _ROLE_FIELDS),
        schema.profile_tags.c.key.label("tag_key"),
        schema.profile_tags.c.value.label("tag_value"),
    )
    .select_from(
        profiles.outerjoin(profile_roles, profile_roles.c.profile_id == profiles.c.id)
        .outerjoin(schema.roles, schema.roles.c.id == profile_roles.c.role_id)
        .outerjoin(schema.profile_tags, schema.profile_tags.c.owner_id == profiles.c.id)
    )
    .where(profiles.c.account_id == bindparam("account"), profiles.c.name_key == bindparam("key"))
)
# Tags come in key order, as ListInstanceProfileTags gives them. SQLite's order (binary) is Python's, and an ORDER BY
# there makes it sort in a temporary B-tree on every call (the index is by lower-cased key), so SQLite's rows are
# sorted after; PostgreSQL sorts by the database's collation, which only it knows.
_PROFILE_WHOLE = Prepared(_PROFILE_WHOLE_QUERY)
_PROFILE_WHOLE_ORDERED = Prepared(_PROFILE_WHOLE_QUERY.order_by(schema.profile_tags.c.key))
_ROLES_OF_RANGE = Prepared(
    select(profile_roles.c.profile_id, schema.roles)
    .join(schema.roles, schema.roles.c.id == profile_roles.c.role_id)
    .join(profiles, profiles.c.id == profile_roles.c.profile_id)
    .where(
        profiles.c.account_id == bindparam("account"),
        profiles.c.name_key >= bindparam("first"),
        profiles.c.name_key <= bindparam("last"),
    )
)


def _roles_by_profile(ctx: Ctx, page: list[Row]) -> dict[str, list[Row]]:
    """The roles of a page of profiles in one query over the page's key range (a page is a contiguous run of names;
    a range is one prepared statement, where an IN list would be compiled anew for every page)."""
    found: dict[str, list[Row]] = defaultdict(list)
    if page:
        bounds = {"account": ctx.account_id, "first": page[0].name_key, "last": page[-1].name_key}
        for row in ctx.tx.execute(_ROLES_OF_RANGE, bounds):
            found[row.profile_id].append(row)
    return found


def _profiles_page(ctx: Ctx, query: Any, p: Params) -> dict[str, Any]:
    marker, limit = iam_lookups.page_params(p)
    page = paging.page(ctx.tx, query, [profiles.c.name_key], marker, limit)
    roles = _roles_by_profile(ctx, page[0])
    return iam_lookups.paged(page, "InstanceProfiles", [profile_out(row, roles[row.id]) for row in page[0]])


@operation("iam", "CreateInstanceProfile", resource=profile_named(), condition_keys=(REQUEST_TAGS,))
def create_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    quota = ctx.settings.quotas.instance_profiles_per_account
    full = AwsError("LimitExceeded", f"Cannot exceed quota for InstanceProfilesPerAccount: {quota}.")
    counters.claim(ctx.tx, "instance_profiles", ctx.account_id, quota, full)
    name = p["InstanceProfileName"]
    values = {
        "id": ids.unique_id(ids.INSTANCE_PROFILE_PREFIX),
        "account_id": ctx.account_id,
        "name": name,
        "name_key": name.lower(),
        "path": p.get("Path", "/"),
        "create_date": ctx.now,
    }

    def exists() -> AwsError:
        return AwsError("EntityAlreadyExists", f"Instance Profile {name} already exists.")

    ctx.tx.insert_unique(_INSERT_PROFILE, values, exists)
    tags = p.get("Tags", [])
    if tags:
        quota_tags = ctx.settings.quotas.tags_per_resource
        iam_tags.put_tags(ctx.tx, schema.profile_tags, values["id"], tags, "TagsPerInstanceProfile", quota_tags)
        tags = iam_tags.tags_of(ctx.tx, schema.profile_tags, values["id"])
    return {"InstanceProfile": profile_out(SimpleNamespace(**values), [], tags)}


# One statement (the store refuses a second), so root's call to it needs no explicit transaction.
@operation("iam", "GetInstanceProfile", resource=profile_named(), single_statement=True)
def get_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    name = p["InstanceProfileName"]
    in_sql = sql.ordered_tags_in_sql(ctx.tx)
    statement = _PROFILE_WHOLE_ORDERED if in_sql else _PROFILE_WHOLE
    rows = ctx.tx.execute(statement, {"account": ctx.account_id, "key": name.lower()}).rows
    if not rows:
        raise AwsError("NoSuchEntity", f"Instance Profile {name} cannot be found.")  # as find_profile words it
    first = rows[0]
    role = first[_ROLE_AT:_ROLE_END]
    roles = [_RoleRow._make(role)] if role[0] is not None else []
    tags = [{"Key": row.tag_key, "Value": row.tag_value} for row in rows if row.tag_key is not None]
    if not in_sql and len(tags) > 1:
        tags.sort(key=itemgetter("Key"))
    return {"InstanceProfile": profile_out(first, roles, tags)}


@operation("iam", "ListInstanceProfiles", resource=path_listing("instance-profile"), deviation=LISTING_BY_PATH)
def list_instance_profiles(ctx: Ctx, p: Params) -> dict[str, Any]:
    query = select(profiles).where(profiles.c.account_id == ctx.account_id)
    prefix = iam_lookups.path_filter(profiles.c.path, p.get("PathPrefix"))
    if prefix is not None:
        query = query.where(prefix)
    return _profiles_page(ctx, query, p)


@operation("iam", "ListInstanceProfilesForRole", resource=role_named())
def list_instance_profiles_for_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    query = (
        select(profiles)
        .join(profile_roles, profile_roles.c.profile_id == profiles.c.id)
        .where(profile_roles.c.role_id == role.id)
    )
    return _profiles_page(ctx, query, p)


@operation("iam", "AddRoleToInstanceProfile", resource=profile_named())
def add_role_to_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    # Both held, profile first (DeleteInstanceProfile holds only the profile, DeleteRole only the role), so neither
    # can be deleted between the insert and its foreign keys.
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"], lock=True)
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"], lock=True)
    # The primary key on profile_id makes the database refuse a second role, whichever writer comes second.
    statement = profile_roles.insert().values(profile_id=profile.id, role_id=role.id)
    ctx.tx.insert_unique(statement, None, AwsError("LimitExceeded", FULL_PROFILE))
    return {}


@operation("iam", "RemoveRoleFromInstanceProfile", resource=profile_named())
def remove_role_from_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"])
    role = find_role(ctx.tx, ctx.account_id, p["RoleName"])
    removed = ctx.tx.execute(
        delete(profile_roles).where(profile_roles.c.profile_id == profile.id, profile_roles.c.role_id == role.id)
    )
    if removed.rowcount == 0:
        raise AwsError("NoSuchEntity", f"The role with name {role.name} cannot be found.")
    return {}


@operation("iam", "DeleteInstanceProfile", resource=profile_named())
def delete_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"], lock=True)
    holds_role = ctx.tx.execute(select(profile_roles.c.role_id).where(profile_roles.c.profile_id == profile.id)).first()
    if holds_role is not None:
        raise AwsError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.")
    ctx.tx.execute(delete(profiles).where(profiles.c.id == profile.id))
    counters.release(ctx.tx, "instance_profiles", ctx.account_id)
    return {}


@operation("iam", "TagInstanceProfile", resource=profile_named(), condition_keys=(REQUEST_TAGS,))
def tag_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"], lock=True)
    quota = ctx.settings.quotas.tags_per_resource
    iam_tags.put_tags(ctx.tx, schema.profile_tags, profile.id, p["Tags"], "TagsPerInstanceProfile", quota)
    return {}


@operation("iam", "UntagInstanceProfile", resource=profile_named(), condition_keys=(TAG_KEYS,))
def untag_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"])
    iam_tags.remove_tags(ctx.tx, schema.profile_tags, profile.id, p["TagKeys"])
    return {}


@operation("iam", "ListInstanceProfileTags", resource=profile_named())
def list_instance_profile_tags(ctx: Ctx, p: Params) -> dict[str, Any]:
    profile = find_profile(ctx.tx, ctx.account_id, p["InstanceProfileName"])
    return iam_tags.list_tags(ctx.tx, schema.profile_tags, profile.id, p)
