"""The policies that apply to a principal: its identity policies, its session policies and its permissions boundary."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, select, update

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


def _attached(link: Table, owner: str) -> Prepared:
    return Prepared(
        select(policies.c.arn, policies.c.id, policies.c.default_version_id)
        .join(link, link.c.policy_id == policies.c.id)
        .where(link.c[owner] == bindparam("owner"))
    )


_VERSION_DOCUMENT = Prepared(
    select(versions.c.document).where(
        versions.c.policy_id == bindparam("policy"), versions.c.version_id == bindparam("version")
    )
)


def _version_document(tx: Tx, policy_id: str, version_id: str) -> policy_document.PolicyDocument:
    """A policy version's document never changes once created (a new document is a new version), so it is fetched
    and parsed once per store, not once per request."""

    def load() -> policy_document.PolicyDocument:
        return document(tx.execute(_VERSION_DOCUMENT, {"policy": policy_id, "version": version_id}).scalar())

    return tx.remember(("policy-version", policy_id, version_id), load)  # type: ignore[no-any-return]


_GENERATION = Prepared(select(schema.counters.c.value).where(schema.counters.c.name == "iam"))
BUMP_GENERATION = Prepared(
    update(schema.counters).where(schema.counters.c.name == "iam").values(value=schema.counters.c.value + 1)
)


def generation(tx: Tx) -> int:
    """The IAM change counter: anything derived from IAM state and keyed by it is current."""
    return int(tx.execute(_GENERATION).scalar())


def _inline(table: Table, owner: str) -> Prepared:
    return Prepared(select(table.c.name, table.c.document).where(table.c[owner] == bindparam("owner")))


_BOUNDARY = Prepared(
    select(policies.c.arn, policies.c.id, policies.c.default_version_id).where(policies.c.arn == bindparam("arn"))
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


def sets_key(principal: Principal, iam_generation: int) -> tuple[object, ...]:
    """What a principal's policy sets depend on: who it is, its session policy, and the state of IAM."""
    return ("policy-sets", principal.kind, principal.entity_id, principal.session_policy, iam_generation)


def policy_sets(tx: Tx, principal: Principal, iam_generation: int) -> PolicySets:
    """The principal's policies, loaded once per IAM change rather than on every call."""
    return tx.remember(sets_key(principal, iam_generation), lambda: _load_policy_sets(tx, principal))  # type: ignore[no-any-return]


def _load_policy_sets(tx: Tx, principal: Principal) -> PolicySets:
    inline_query, attached_query, boundary_query = _ROLE_QUERIES if principal.kind == "assumed-role" else _USER_QUERIES
    owner = {"owner": principal.entity_id}
    identity = [
        Policy(f"{principal.name}/{row.name}", document(row.document)) for row in tx.execute(inline_query, owner)
    ]
    identity += [
        Policy(row.arn, _version_document(tx, row.id, row.default_version_id))
        for row in tx.execute(attached_query, owner)
    ]
    boundary_arn = tx.execute(boundary_query, owner).scalar()
    boundary = None
    if boundary_arn:
        found = tx.execute(_BOUNDARY, {"arn": boundary_arn}).first()
        boundary = (
            (Policy(found.arn, _version_document(tx, found.id, found.default_version_id)),) if found is not None else ()
        )
    session = None
    if principal.session_policy:
        texts = json.loads(principal.session_policy)
        session = tuple(Policy(f"session-policy-{index}", document(text)) for index, text in enumerate(texts))
    return PolicySets(tuple(identity), session, boundary)


_VARIABLE = re.compile(r"\$\{([^},]+)")


def mentioned_keys(sets: PolicySets) -> tuple[str, ...]:
    """The condition keys (lower-cased) that any statement of the sets reads, in a condition or as a policy
    variable: everything else in a request's context cannot change the sets' decision."""
    found: set[str] = set()
    for policy in (*sets.identity, *(sets.session or ()), *(sets.boundary or ())):
        for statement in policy.document.statements:
            for block in (statement.get("Condition") or {}).values():
                if isinstance(block, dict):
                    found.update(key.lower() for key in block)
            found.update(name.strip().lower() for name in _VARIABLE.findall(json.dumps(statement)))
    return tuple(sorted(found))
