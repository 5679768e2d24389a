"""IAM policy evaluation: which statements apply to a request, and AWS's allow/deny logic within one account.
Wildcards and variables are matched by patterns.py."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from roleport.auth.patterns import (
    VARIABLE,
    Chunk,
    Context,
    Matcher,
    Names,
    Token,
    action_names,
    joined,
    matcher,
    resolve,
    resource_names,
    tokenize,
)
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


# --- Condition operators (IAM JSON policy elements: Condition operators) -----------------------------------------


def _number(text: str) -> Decimal | None:
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def _date(text: str) -> float | None:
    """W3C ISO 8601 forms or epoch seconds (Condition operators page, Date operators); no zone means UTC.
    An all-digit value is read as epoch seconds, so the bare-year W3C form "2024" is not supported."""
    if _NUMBER.fullmatch(text):
        return float(text)
    if _YEAR_MONTH.fullmatch(text):
        text += "-01"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _boolean(text: str) -> str | None:
    lowered = text.lower()
    return lowered if lowered in ("true", "false") else None


def _binary(text: str) -> bytes | None:
    # The policy holds base-64 (Condition operators page); so does the context, as IAM Simulate* takes it.
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    # "If you specify an IP address without the associated routing prefix, IAM uses ... /32" (IP operators).
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_YEAR_MONTH: Final = re.compile(r"\d{4}-\d{2}")


def _found(value: str, pattern: Matcher) -> bool:
    return bool(pattern.fullmatch(value))


def _contains(address: Any, network: Any) -> bool:
    return bool(address in network)  # an IPv4 address is simply not in an IPv6 network


@dataclass(frozen=True, slots=True)
class _Family:
    prepare: Callable[[tuple[Chunk, ...]], Any]  # resolved policy value -> comparable; None matches nothing
    convert: Callable[[str], Any]  # request value -> comparable; None matches nothing
    variables: bool  # "string operators or the ARN operators" and Bool take variables (Condition operators)


_STRING = _Family(joined, str, True)
_FOLDED = _Family(lambda chunks: joined(chunks).casefold(), str.casefold, True)
_LIKE = _Family(lambda chunks: matcher(chunks, "like"), str, True)
_ARN = _Family(lambda chunks: matcher(chunks, "arn"), str, True)
_NUMERIC = _Family(lambda chunks: _number(joined(chunks).strip()), lambda text: _number(text.strip()), False)
_DATE = _Family(lambda chunks: _date(joined(chunks).strip()), lambda text: _date(text.strip()), False)
_BOOL = _Family(lambda chunks: _boolean(joined(chunks)), _boolean, True)
_BINARY = _Family(lambda chunks: _binary(joined(chunks)), _binary, False)
_IP = _Family(lambda chunks: _network(joined(chunks)), _address, False)


@dataclass(frozen=True, slots=True)
class _Operator:
    family: _Family
    test: Callable[[Any, Any], bool]  # (request value, policy value) -> the positive operator matches
    negated: bool


_ORDERINGS: Final = {
    "equals": operator.eq,
    "lessthan": operator.lt,
    "lessthanequals": operator.le,
    "greaterthan": operator.gt,
    "greaterthanequals": operator.ge,
}
_OPERATORS: Final[dict[str, _Operator]] = {
    "stringequals": _Operator(_STRING, operator.eq, False),
    "stringnotequals": _Operator(_STRING, operator.eq, True),
    "stringequalsignorecase": _Operator(_FOLDED, operator.eq, False),
    "stringnotequalsignorecase": _Operator(_FOLDED, operator.eq, True),
    "stringlike": _Operator(_LIKE, _found, False),
    "stringnotlike": _Operator(_LIKE, _found, True),
    **{f"numeric{name}": _Operator(_NUMERIC, test, False) for name, test in _ORDERINGS.items()},
    "numericnotequals": _Operator(_NUMERIC, operator.eq, True),
    **{f"date{name}": _Operator(_DATE, test, False) for name, test in _ORDERINGS.items()},
    "datenotequals": _Operator(_DATE, operator.eq, True),
    "bool": _Operator(_BOOL, operator.eq, False),
    "binaryequals": _Operator(_BINARY, operator.eq, False),
    "ipaddress": _Operator(_IP, _contains, False),
    "notipaddress": _Operator(_IP, _contains, True),
    # "The ArnEquals and ArnLike condition operators behave identically" (Condition operators page).
    "arnequals": _Operator(_ARN, _found, False),
    "arnlike": _Operator(_ARN, _found, False),
    "arnnotequals": _Operator(_ARN, _found, True),
    "arnnotlike": _Operator(_ARN, _found, True),
}
_FOR_ALL, _FOR_ANY = "forallvalues", "foranyvalue"


@dataclass(frozen=True, slots=True)
class _Clause:
    """One condition key under one operator."""

    key: str  # lower-cased
    operator: _Operator | None  # None: the Null check, or an operator AWS does not define
    quantifier: str  # "", _FOR_ALL or _FOR_ANY
    if_exists: bool
    values: tuple[Any, ...]  # prepared policy values without variables (for Null: True means "key absent")
    templates: tuple[tuple[Token, ...], ...] = ()  # policy values with variables, prepared per request

    def holds(self, context: Context) -> bool:
        present = context.values(self.key)
        found = self.operator
        if found is None:
            return (not present) in self.values
        if not present:
            # AWS: a missing key fails the condition, but a negated operator is then true, and IfExists is
            # true (Condition operators page); ForAllValues "also returns true if there are no context keys in
            # the request", ForAnyValue returns false (Single-valued vs. multivalued context keys page).
            return self.if_exists or self.quantifier == _FOR_ALL or (not self.quantifier and found.negated)
        policy = self.values
        if self.templates:
            prepared = (_prepare(found.family, tokens, context) for tokens in self.templates)
            policy += tuple(value for value in prepared if value is not None)
        if self.quantifier:
            # AWS: request values that "resolve to an empty data set (for example, an empty string)" make
            # ForAllValues true and ForAnyValue false (Creating a condition with multiple keys or values).
            results = (_positive(found, (value,), policy) != found.negated for value in present if value)
            return all(results) if self.quantifier == _FOR_ALL else any(results)
        # AWS: policy values for one key are ORed, and a negated operator's values are NORed (Conditions with
        # multiple context keys or values). A key given several values without a set operator is treated as
        # matching when any of them does; AWS documents no rule for that case.
        return _positive(found, present, policy) != found.negated


_NEVER: Final = _Clause("", None, "", False, ())  # a Null check that accepts no answer: never holds


def _positive(found: _Operator, present: Sequence[str], policy: tuple[Any, ...]) -> bool:
    """Whether any request value matches any policy value under the operator's positive form."""
    convert, test = found.family.convert, found.test
    for value in present:
        converted = convert(value)
        if converted is not None:
            for wanted in policy:
                if test(converted, wanted):
                    return True
    return False


def _prepare(family: _Family, tokens: tuple[Token, ...], context: Context | None) -> Any:
    chunks = resolve(tokens, context)
    return None if chunks is None else family.prepare(chunks)


def _clause(name: str, key: str, raw: Any, variables: bool) -> _Clause:
    quantifier, _, base = name.lower().rpartition(":")
    if_exists = base.endswith("ifexists") and base != "ifexists"
    base = base.removesuffix("ifexists") if if_exists else base
    texts = _condition_values(raw)
    if base == "null" and not if_exists and not quantifier and texts is not None:
        # "true (the key doesn't exist - it is null) or false (the key exists and its value is not null)".
        return _Clause(key.lower(), None, "", False, tuple(text.lower() == "true" for text in texts if _boolean(text)))
    found = _OPERATORS.get(base)
    if found is None or quantifier not in ("", _FOR_ALL, _FOR_ANY) or texts is None:
        # An operator AWS does not define (or a malformed value list) never matches, so its statement does not
        # apply - for a Deny, that means it denies nothing. IAM refuses such policies when they are written
        # (MalformedPolicyDocument), so only a document that skipped the grammar check can get here.
        return _NEVER
    values: list[Any] = []
    templates: list[tuple[Token, ...]] = []
    for text in texts:
        tokens = tokenize(text, variables and found.family.variables)
        if any(kind == VARIABLE for kind, _, _ in tokens):
            templates.append(tokens)
        elif (value := _prepare(found.family, tokens, None)) is not None:  # None: a value nothing can match
            values.append(value)
    return _Clause(key.lower(), found, quantifier, if_exists, tuple(values), tuple(templates))


def _condition_values(raw: Any) -> list[str] | None:
    """JSON booleans and numbers are accepted as condition values ("Bool": {"aws:SecureTransport": false})."""
    texts: list[str] = []
    for value in raw if isinstance(raw, list) else [raw]:
        if isinstance(value, bool):
            texts.append("true" if value else "false")
        elif isinstance(value, str | int | float):
            texts.append(str(value))
        else:
            return None
    return texts


def _conditions(block: Any, variables: bool) -> list[_Clause]:
    """Every operator and every key in the block becomes one clause; all must hold (Condition element page)."""
    if not isinstance(block, dict):
        return [_NEVER]
    clauses: list[_Clause] = []
    for name, keys in block.items():
        if not isinstance(keys, dict):
            clauses.append(_NEVER)
            continue
        clauses.extend(_clause(name, key, values, variables) for key, values in keys.items())
    return clauses


# --- Statements and documents -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statement:
    index: int
    deny: bool
    actions: Names
    not_action: bool
    resources: Names
    not_resource: bool
    conditions: tuple[_Clause, ...]


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


def _statement(index: int, raw: Mapping[str, Any], variables: bool) -> _Statement:
    clauses = _conditions(raw.get("Condition", {}), variables)
    if raw.get("Effect") not in ("Allow", "Deny"):  # "The Effect value is case sensitive" (Effect element)
        clauses.append(_NEVER)
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
