"""The policies that apply to a principal: its identity policies, its session policies and its permissions boundary."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select

from roleport.auth import policy_document
from roleport.auth.policy import Policy
from roleport.context import Principal
from roleport.store import schema
from roleport.store.db import Prepared, Tx

policies, versions = schema.policies, schema.policy_versions


@dataclass(frozen=True, slots=True)
class PolicySets:
    identity: tuple[Policy, ...]
    session: tuple[Policy, ...] | None  # None: the session has no session policy (then it does not narrow)
    boundary: tuple[Policy, ...] | None  # None: no permissions boundary


@functools.lru_cache(maxsize=4096)
def document(text: str) -> policy_document.PolicyDocument:
    """Parsed once per distinct text: the evaluator compiles each parsed document once, so reusing the object
    keeps a request from paying for the compile again (documents in the store were checked when stored)."""
    return policy_document.parse(text)


def _attached(link: schema.Table, owner: str) -> Prepared:
    return Prepared(
        select(policies.c.arn, versions.c.document)
        .join(link, link.c.policy_id == policies.c.id)
        .join(
            versions,
            and_(versions.c.policy_id == policies.c.id, versions.c.version_id == policies.c.default_version_id),
        )
        .where(link.c[owner] == bindparam("owner"))
    )


def _inline(table: schema.Table, owner: str) -> Prepared:
    return Prepared(select(table.c.name, table.c.document).where(table.c[owner] == bindparam("owner")))


_BOUNDARY = Prepared(
    select(policies.c.arn, versions.c.document)
    .join(versions, and_(versions.c.policy_id == policies.c.id, versions.c.version_id == policies.c.default_version_id))
    .where(policies.c.arn == bindparam("arn"))
)
_ROLE_QUERIES = (
    _inline(schema.role_inline_policies, "role_id"),
    _attached(schema.role_policy_attachments, "role_id"),
    Prepared(select(schema.roles.c.permissions_boundary).where(schema.roles.c.id == bindparam("owner"))),
)
_USER_QUERIES = (
    _inline(schema.user_inline_policies, "user_id"),
    _attached(schema.user_policy_attachments, "user_id"),
    Prepared(select(schema.users.c.permissions_boundary).where(schema.users.c.id == bindparam("owner"))),
)


def policy_sets(tx: Tx, principal: Principal) -> PolicySets:
    inline_query, attached_query, boundary_query = _ROLE_QUERIES if principal.kind == "assumed-role" else _USER_QUERIES
    owner = {"owner": principal.entity_id}
    identity = [
        Policy(f"{principal.name}/{row.name}", document(row.document)) for row in tx.execute(inline_query, owner)
    ]
    identity += [Policy(row.arn, document(row.document)) for row in tx.execute(attached_query, owner)]
    boundary_arn = tx.execute(boundary_query, owner).scalar()
    boundary = None
    if boundary_arn:
        found = tx.execute(_BOUNDARY, {"arn": boundary_arn}).first()
        boundary = (Policy(found.arn, document(found.document)),) if found is not None else ()
    session = None
    if principal.session_policy:
        texts = json.loads(principal.session_policy)
        session = tuple(Policy(f"session-policy-{index}", document(text)) for index, text in enumerate(texts))
    return PolicySets(tuple(identity), session, boundary)
