"""The policies that apply to a principal: its identity policies, its session policies and its permissions boundary."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from roleport.auth import policy_document
from roleport.auth.policy import Policy
from roleport.auth.principal import Principal
from roleport.store import journal, schema
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


_VERSION = Prepared(
    select(schema.counters.c.value, journal.first_pending_sql(journal.IAM, bindparam("now"))).where(
        schema.counters.c.name == "iam"
    )
)


@dataclass(frozen=True, slots=True)
class Version:
    """Which state of IAM a reader outside IAM sees: the state after `generation` changes, less those from
    `first_pending` on, which have not reached it yet (None: it sees them all). Derived values keyed by it are
    current."""

    generation: int
    first_pending: int | None

    def view(self, tx: Tx, now: datetime) -> journal.View:
        return journal.View(tx, now, {journal.IAM: self.first_pending})


def version(tx: Tx, now: datetime) -> Version:
    row = tx.execute(_VERSION, {"now": now}).one()
    return Version(int(row[0]), row[1])


def sets_key(principal: Principal, seen: Version) -> tuple[object, ...]:
    """What a principal's policy sets depend on: who it is, its session policy, and the state of IAM it sees."""
    return ("policy-sets", principal.kind, principal.entity_id, principal.session_policy, seen)


def policy_sets(tx: Tx, principal: Principal, seen: Version, now: datetime) -> PolicySets:
    """The principal's policies as authorization sees them (changes reach it after the propagation delay), loaded
    once per change rather than on every call."""
    return tx.remember(sets_key(principal, seen), lambda: _load_policy_sets(seen.view(tx, now), principal))  # type: ignore[no-any-return]


_OWNED = {
    "assumed-role": (schema.roles, schema.role_inline_policies, schema.role_policy_attachments, "role_id"),
    "user": (schema.users, schema.user_inline_policies, schema.user_policy_attachments, "user_id"),
}


def _version_document(view: journal.View, policy: Any) -> policy_document.PolicyDocument:
    """A policy version's document never changes once created (a new document is a new version), so it is fetched
    and parsed once per store, not once per request."""

    def load() -> policy_document.PolicyDocument:
        row = view.one(versions, policy_id=policy.id, version_id=policy.default_version_id)
        return document(row.document)

    return view.tx.remember(("policy-version", policy.id, policy.default_version_id), load)  # type: ignore[no-any-return]


def _load_policy_sets(view: journal.View, principal: Principal) -> PolicySets:
    owners, inline, attached, owner = _OWNED[principal.kind]
    identity = [
        Policy(f"{principal.name}/{row.name}", document(row.document))
        for row in view.rows(inline, **{owner: principal.entity_id})
    ]
    for link in view.rows(attached, **{owner: principal.entity_id}):
        found = view.one(policies, id=link.policy_id)
        if found is not None:
            identity.append(Policy(found.arn, _version_document(view, found)))
    entity = view.one(owners, id=principal.entity_id)
    boundary_arn = entity.permissions_boundary if entity is not None else None
    boundary = None
    if boundary_arn:
        found = view.one(policies, arn=boundary_arn)
        boundary = (Policy(found.arn, _version_document(view, found)),) if found is not None else ()
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
