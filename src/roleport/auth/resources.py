"""The resource ARN each call is authorized against (the Service Authorization Reference's resource types), and the
tags of that resource for aws:ResourceTag conditions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from roleport import ids
from roleport.auth.principal import Principal
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


Finder = Callable[[Lookup, dict[str, Any]], list[Resource]]


def _iam_resource(look: Lookup, p: dict[str, Any], operation: str) -> list[Resource]:
    account = look.account
    if operation.startswith("List") and not any(k in p for k in ("RoleName", "UserName", "InstanceProfileName")):
        # A list call is checked against the type's ARN with the path prefix, e.g. "arn:aws:iam::A:role/".
        kind = {"ListRoles": "role", "ListInstanceProfiles": "instance-profile", "ListUsers": "user"}.get(operation)
        if kind is None:
            return [Resource("*")]
        return [Resource(ids.iam_arn(account, kind, p.get("PathPrefix", "/"), ""))]
    if "InstanceProfileName" in p:
        return [look.iam("instance-profile", p["InstanceProfileName"], p.get("Path"))]
    if "RoleName" in p:
        return [look.iam("role", p["RoleName"], p.get("Path"))]
    if "UserName" in p:
        return [look.iam("user", p["UserName"], p.get("Path"))]
    caller_ops = ("CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey", "GetUser")
    if operation in caller_ops and look.caller_user():
        return [look.iam("user", look.caller_user())]
    if "PolicyArn" in p:
        return [look.policy(p["PolicyArn"])]
    if operation == "CreatePolicy":
        return [Resource(ids.iam_arn(account, "policy", p.get("Path", "/"), p["PolicyName"]))]
    if operation == "SimulatePrincipalPolicy":
        return [Resource(p["PolicySourceArn"])]
    return [Resource("*")]


def _ec2_resource(look: Lookup, p: dict[str, Any], operation: str) -> list[Resource]:
    if "InstanceIds" in p and not operation.startswith("Describe"):
        return [look.instance(instance_id) for instance_id in p["InstanceIds"]]
    if "InstanceId" in p:
        return [look.instance(p["InstanceId"])]
    if "AssociationId" in p:
        instance_id = look.tx.execute(_ASSOCIATION_INSTANCE, {"association": p["AssociationId"]}).scalar()
        return [look.instance(instance_id)] if instance_id else [Resource("*")]
    if operation == "RunInstances":
        return [Resource(f"arn:aws:ec2:{look.region}:{look.account}:instance/*")]
    return [Resource("*")]


def resources(service: str, operation: str, look: Lookup, params: dict[str, Any]) -> list[Resource]:
    if service == "iam":
        return _iam_resource(look, params, operation)
    if service == "ec2":
        return _ec2_resource(look, params, operation)
    if service == "sts" and "RoleArn" in params:
        return [Resource(params["RoleArn"])]
    return [Resource("*")]


def request_tags(params: dict[str, Any]) -> dict[str, str]:
    """Tags a call asks to set, for aws:RequestTag/KEY and aws:TagKeys (IAM Tags; EC2 TagSpecifications)."""
    tags = {t["Key"]: t.get("Value", "") for t in params.get("Tags", []) if isinstance(t, dict)}
    for spec in params.get("TagSpecifications", []):
        tags.update({t["Key"]: t.get("Value", "") for t in spec.get("Tags", [])})
    return tags
