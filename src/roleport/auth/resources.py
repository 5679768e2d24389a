"""Where a call is authorized: finders that name the resources an operation acts on (the Service Authorization
Reference's resource types) from its parameters, and Lookup, which gives their ARNs and the tags aws:ResourceTag reads.
Each operation declares its finder in its @operation line (services/registry.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select

from roleport import ids
from roleport.auth.principal import Principal
from roleport.context import Params
from roleport.store import schema
from roleport.store.db import Prepared, Tx


@dataclass(frozen=True, slots=True)
class Resource:
    arn: str
    tags: dict[str, str] = field(default_factory=dict)


def _named(table: schema.Table, tags: schema.Table) -> tuple[Prepared, Prepared]:
    row = Prepared(
        select(table.c.id, table.c.path, table.c.name).where(
            table.c.account_id == bindparam("account"), table.c.name_key == bindparam("key")
        )
    )
    return row, Prepared(select(tags.c.key, tags.c.value).where(tags.c.owner_id == bindparam("owner")))


_LOOKUPS = {
    "role": _named(schema.roles, schema.role_tags),
    "instance-profile": _named(schema.instance_profiles, schema.profile_tags),
    "user": _named(schema.users, schema.user_tags),
}
_INSTANCE_TAGS = Prepared(
    select(schema.ec2_instance_tags.c.key, schema.ec2_instance_tags.c.value).where(
        schema.ec2_instance_tags.c.instance_id == bindparam("instance")
    )
)
_ASSOCIATION_INSTANCE = Prepared(
    select(schema.ec2_associations.c.instance_id).where(schema.ec2_associations.c.id == bindparam("association"))
)
_KEY_OWNER = Prepared(
    select(schema.users.c.name)
    .join(schema.access_keys, schema.access_keys.c.user_id == schema.users.c.id)
    .where(schema.access_keys.c.id == bindparam("key"), schema.users.c.account_id == bindparam("account"))
)
_POLICY = Prepared(select(schema.policies.c.id).where(schema.policies.c.arn == bindparam("arn")))
_POLICY_TAGS = Prepared(
    select(schema.policy_tags.c.key, schema.policy_tags.c.value).where(
        schema.policy_tags.c.owner_id == bindparam("owner")
    )
)


@dataclass(frozen=True, slots=True)
class Lookup:
    tx: Tx
    principal: Principal
    region: str
    iam_generation: int

    @property
    def account(self) -> str:
        return self.principal.account_id

    def iam(self, kind: str, name: str, path: str | None = None) -> Resource:
        """An existing entity's ARN (with its path) and tags; one that does not exist yet gets the given path."""
        key = ("iam-resource", kind, self.account, name.lower(), path, self.iam_generation)
        return self.tx.remember(key, lambda: self._iam(kind, name, path))  # type: ignore[no-any-return]

    def _iam(self, kind: str, name: str, path: str | None) -> Resource:
        row_query, tags_query = _LOOKUPS[kind]
        row = self.tx.execute(row_query, {"account": self.account, "key": name.lower()}).first()
        if row is None:
            return Resource(ids.iam_arn(self.account, kind, path or "/", name))
        tags = {t.key: t.value for t in self.tx.execute(tags_query, {"owner": row.id})}
        return Resource(ids.iam_arn(self.account, kind, row.path, row.name), tags)

    def policy(self, arn: str) -> Resource:
        row = self.tx.execute(_POLICY, {"arn": arn}).first()
        tags = {t.key: t.value for t in self.tx.execute(_POLICY_TAGS, {"owner": row.id})} if row else {}
        return Resource(arn, tags)

    def instance(self, instance_id: str) -> Resource:
        tags = {t.key: t.value for t in self.tx.execute(_INSTANCE_TAGS, {"instance": instance_id})}
        return Resource(f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance_id}", tags)

    def caller_user(self) -> str:
        return self.principal.name if self.principal.kind == "user" else ""

    def association_instance(self, association_id: str) -> str | None:
        """The instance an instance-profile association belongs to."""
        return self.tx.execute(_ASSOCIATION_INSTANCE, {"association": association_id}).scalar()  # type: ignore[no-any-return]

    def key_owner(self, key_id: str) -> str | None:
        """The name of the user in the caller's account that holds this access key."""
        return self.tx.execute(_KEY_OWNER, {"key": key_id, "account": self.account}).scalar()  # type: ignore[no-any-return]


_ANYWHERE: Sequence[Resource] = (Resource("*"),)


@dataclass(frozen=True, slots=True)
class Finder:
    """The resources one operation is authorized against: the reference's resource types it yields (none for an
    action that names no resource type, which AWS checks against "*") and how to find them in a call."""

    types: tuple[str, ...]
    find: Callable[[Lookup, Params], Sequence[Resource]]

    def __call__(self, look: Lookup, params: Params) -> Sequence[Resource]:
        return self.find(look, params)


# The action has no resource type in the reference: policies grant it with "Resource": "*".
ANY = Finder((), lambda look, p: _ANYWHERE)


def role_named(param: str = "RoleName") -> Finder:
    # A role about to be created has no row yet: its ARN takes the Path the call gives it.
    return Finder(("role",), lambda look, p: (look.iam("role", p[param], p.get("Path")),))


def profile_named(param: str = "InstanceProfileName") -> Finder:
    return Finder(("instance-profile",), lambda look, p: (look.iam("instance-profile", p[param], p.get("Path")),))


def user_named(param: str = "UserName", *, default_to_caller: bool = False) -> Finder:
    """The user the call names; where the name is optional and left out, AWS acts on the calling user (the
    access-key calls and GetUser), and a caller that is not a user gets "*"."""

    def find(look: Lookup, p: Params) -> Sequence[Resource]:
        name = p.get(param) or (look.caller_user() if default_to_caller else "")
        return (look.iam("user", name, p.get("Path")),) if name else _ANYWHERE

    return Finder(("user",), find)


def key_owner(param: str = "AccessKeyId") -> Finder:
    """The user holding the access key, found by the key: GetAccessKeyLastUsed names only the key. A key with no
    owner in the account (the root key, an unknown one) is checked against "*", and the handler answers for it."""

    def find(look: Lookup, p: Params) -> Sequence[Resource]:
        owner = look.key_owner(p[param])
        return (look.iam("user", owner),) if owner else _ANYWHERE

    return Finder(("user",), find)


def policy_arn(param: str = "PolicyArn") -> Finder:
    return Finder(("policy",), lambda look, p: (look.policy(p[param]),))


def policy_named(param: str = "PolicyName") -> Finder:
    """A policy about to be created: its ARN from its name and path, as CreatePolicy will make it."""
    return Finder(
        ("policy",), lambda look, p: (Resource(ids.iam_arn(look.account, "policy", p.get("Path", "/"), p[param])),)
    )


def arn_given(param: str, *types: str) -> Finder:
    """An ARN the caller passes as it is (SimulatePrincipalPolicy's PolicySourceArn, AssumeRole's RoleArn)."""
    return Finder(types, lambda look, p: (Resource(p[param]),))


def path_listing(kind: str) -> Finder:
    """A whole-type listing (ListRoles, ListUsers, ListInstanceProfiles): checked against the type's ARN with the
    listing's path prefix and no name, e.g. "arn:aws:iam::A:role/" for the default "/"."""
    return Finder((kind,), lambda look, p: (Resource(ids.iam_arn(look.account, kind, p.get("PathPrefix", "/"), "")),))


def instance_ids(param: str = "InstanceIds") -> Finder:
    return Finder(("instance",), lambda look, p: [look.instance(instance_id) for instance_id in p[param]])


def one_instance(param: str = "InstanceId") -> Finder:
    return Finder(("instance",), lambda look, p: (look.instance(p[param]),))


def instance_of_association(param: str = "AssociationId") -> Finder:
    """The instance a profile association belongs to; an unknown association is checked against "*" and the handler
    then answers that it does not exist."""

    def find(look: Lookup, p: Params) -> Sequence[Resource]:
        instance = look.association_instance(p[param])
        return (look.instance(instance),) if instance else _ANYWHERE

    return Finder(("instance",), find)


def account_scope(kind: str) -> Finder:
    """Every resource of an EC2 type in the caller's account and region: RunInstances' instances, which have no id
    before the call."""
    return Finder((kind,), lambda look, p: (Resource(f"arn:aws:ec2:{look.region}:{look.account}:{kind}/*"),))


# AWS checks a whole-type listing (ListRoles, ListUsers, ListInstanceProfiles) against the type's ARN with the path
# prefix, though the reference lists no resource type for them.
LISTING_BY_PATH = (
    "AWS denies a listing 'on resource: arn:aws:iam::ACCOUNT:role/' (the path prefix, no name), so a policy scoped "
    "to a path grants it (IAM ARNs: 'arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/*'); the reference "
    "lists no resource type. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns"
)
