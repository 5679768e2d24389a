"""IAM policy evaluation: which statements apply to a request, and AWS's allow/deny logic within one account.
Statements are compiled once per document; wildcards and variables are matched by patterns.py, Condition blocks
by conditions.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from roleport.auth.conditions import NEVER, Clause, clauses_of
from roleport.auth.patterns import Context, Names, action_names, resource_names
from roleport.auth.policy_document import PolicyDocument

ALLOWED: Final = "allowed"
EXPLICIT_DENY: Final = "explicitDeny"
IMPLICIT_DENY: Final = "implicitDeny"


@dataclass(frozen=True, slots=True)
class Policy:
    source_id: str  # a policy ARN, or "RoleName/PolicyName" for an inline policy; echoed in matches
    document: PolicyDocument


@dataclass(frozen=True, slots=True)
class Request:
    action: str  # "service:Action", e.g. "iam:CreateRole"
    resource: str  # the resource ARN AWS checks, or "*"
    context: Mapping[str, Sequence[str]]  # condition keys (any case) -> values; absent keys are missing


@dataclass(frozen=True, slots=True)
class Match:
    source_id: str
    statement_index: int
    effect: str  # "Allow" | "Deny"


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str  # ALLOWED | EXPLICIT_DENY | IMPLICIT_DENY, spelled as IAM Simulate* spells them
    matched: tuple[Match, ...]  # every matching Deny for a deny, every matching Allow for an allow


def evaluate(policies: Sequence[Policy], request: Request) -> Decision:
    """One set of policies: explicit Deny beats Allow beats the implicit deny."""
    return _decide((policies,), request)


def authorize(
    identity: Sequence[Policy],
    request: Request,
    *,
    session: Sequence[Policy] | None = None,
    boundary: Sequence[Policy] | None = None,
) -> Decision:
    """A principal acting in its own account: any explicit Deny in any set denies; otherwise the identity
    policies must allow and so must each other set that is given. None means "no such set"; an empty
    sequence is a set that allows nothing, so it denies (fail closed)."""
    # AWS: permissions are the intersection of identity policies with the boundary and with session
    # policies, and an explicit deny in any of them wins (Policy evaluation logic; Permissions boundaries;
    # Session policies).
    sets = [identity, *(given for given in (session, boundary) if given is not None)]
    return _decide(sets, request)


def _decide(sets: Sequence[Sequence[Policy]], request: Request) -> Decision:
    context = Context(request.context)
    action = request.action.lower()
    scans = [_scan(policies, action, request.resource, context) for policies in sets]
    denies = tuple(match for _, found in scans for match in found)
    if denies:
        return Decision(EXPLICIT_DENY, denies)
    if all(allows for allows, _ in scans):
        return Decision(ALLOWED, tuple(match for allows, _ in scans for match in allows))
    return Decision(IMPLICIT_DENY, ())


def _scan(policies: Sequence[Policy], action: str, resource: str, context: Context) -> tuple[list[Match], list[Match]]:
    """All statements are read: a Deny anywhere must be found even after an Allow (deny-allow logic page)."""
    allows: list[Match] = []
    denies: list[Match] = []
    for policy in policies:
        for statement in _compiled(_Identity(policy.document)):
            # NotAction and NotResource match everything except what they list (NotAction, NotResource
            # pages); the condition block is an AND of every clause (Condition element page).
            names = statement.actions
            hit = names.everything or action in names.exact or (names.wild and names.matches(action, context))
            if hit == statement.not_action:
                continue
            names = statement.resources
            hit = names.everything or resource in names.exact or (names.wild and names.matches(resource, context))
            if hit == statement.not_resource:
                continue
            for clause in statement.conditions:
                if not clause.holds(context):
                    break
            else:
                found = denies if statement.deny else allows
                found.append(Match(policy.source_id, statement.index, "Deny" if statement.deny else "Allow"))
    return allows, denies


# --- Statements and documents -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statement:
    index: int
    deny: bool
    actions: Names
    not_action: bool
    resources: Names
    not_resource: bool
    conditions: tuple[Clause, ...]


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


def _statement(index: int, raw: Mapping[str, Any], variables: bool) -> _Statement:
    clauses = clauses_of(raw.get("Condition", {}), variables)
    if raw.get("Effect") not in ("Allow", "Deny"):  # "The Effect value is case sensitive" (Effect element)
        clauses.append(NEVER)
    return _Statement(
        index=index,
        deny=raw.get("Effect") == "Deny",
        actions=action_names(_strings(raw.get("Action", raw.get("NotAction")))),
        not_action="Action" not in raw and "NotAction" in raw,
        resources=resource_names(_strings(raw.get("Resource", raw.get("NotResource"))), variables),
        not_resource="Resource" not in raw and "NotResource" in raw,
        conditions=tuple(clauses),
    )


class _Identity:
    """A cache key that is the document object itself: a PolicyDocument holds dicts, so it cannot be hashed.
    The cache keeps the document alive, so its id() cannot be reused while the entry exists."""

    __slots__ = ("document",)

    def __init__(self, document: PolicyDocument) -> None:
        self.document = document

    def __hash__(self) -> int:
        return id(self.document)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.document is self.document


@lru_cache(maxsize=2048)
def _compiled(key: _Identity) -> tuple[_Statement, ...]:
    # Variables exist only in "2012-10-17"; under "2008-10-17" they are "treated as literal strings"
    # (Variables and tags page).
    variables = key.document.version == "2012-10-17"
    return tuple(_statement(index, raw, variables) for index, raw in enumerate(key.document.statements))
