"""IAM policy evaluation: which statements apply to a request, and AWS's allow/deny logic within one account."""

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
from typing import Any, Final, Protocol

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
    context = _Context(request.context)
    action = request.action.lower()
    scans = [_scan(policies, action, request.resource, context) for policies in sets]
    denies = tuple(match for _, found in scans for match in found)
    if denies:
        return Decision(EXPLICIT_DENY, denies)
    if all(allows for allows, _ in scans):
        return Decision(ALLOWED, tuple(match for allows, _ in scans for match in allows))
    return Decision(IMPLICIT_DENY, ())


def _scan(policies: Sequence[Policy], action: str, resource: str, context: _Context) -> tuple[list[Match], list[Match]]:
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


class _Context:
    """The request's condition keys. Key names are not case-sensitive (Condition element page)."""

    __slots__ = ("_keys", "_raw")

    def __init__(self, raw: Mapping[str, Sequence[str]]) -> None:
        self._raw = raw
        self._keys: dict[str, tuple[str, ...]] | None = None

    def values(self, key: str) -> tuple[str, ...]:
        if self._keys is None:  # built on first use: most statements never look at the context
            keys: dict[str, tuple[str, ...]] = {}
            for name, values in self._raw.items():
                lowered = name.lower()
                found = (values,) if isinstance(values, str) else tuple(values)
                keys[lowered] = keys[lowered] + found if lowered in keys else found
            self._keys = keys
        return self._keys.get(key, ())

    def variable(self, key: str) -> str | None:
        # Only a single-valued key can be a variable (Single-valued vs. multivalued context keys page).
        values = self.values(key)
        return values[0] if len(values) == 1 else None


# --- Policy text: variables and globs ---------------------------------------------------------------------------

_TEXT, _LITERAL, _VARIABLE = 0, 1, 2
_Token = tuple[int, str, str | None]  # (kind, policy text | literal | lower-cased key, variable default)
_Chunk = tuple[str, bool]  # (text, whether * and ? in it are wildcards)
_VARIABLE_RE: Final = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY: Final = re.compile(r"\s*([^\s,']+)\s*(?:,\s*'([^']*)'\s*)?")


def _tokens(text: str, variables: bool) -> tuple[_Token, ...]:
    """Split policy text around ${key} and ${key, 'default'}. ${*}, ${?} and ${$} stand for the literal
    character (Variables and tags page, "Special characters"; "Specifying default values")."""
    if not variables or "${" not in text:
        return ((_TEXT, text, None),)
    tokens: list[_Token] = []
    position = 0
    for found in _VARIABLE_RE.finditer(text):
        if found.start() > position:
            tokens.append((_TEXT, text[position : found.start()], None))
        body = found.group(1)
        if body in ("*", "?", "$"):
            tokens.append((_LITERAL, body, None))
        elif variable := _VARIABLE_BODY.fullmatch(body):
            tokens.append((_VARIABLE, variable.group(1).lower(), variable.group(2)))
        else:
            tokens.append((_LITERAL, found.group(0), None))
        position = found.end()
    if position < len(text):
        tokens.append((_TEXT, text[position:], None))
    return tuple(tokens)


def _resolve(tokens: tuple[_Token, ...], context: _Context | None) -> tuple[_Chunk, ...] | None:
    """Substitute variables; None when one has no value and no default. A substituted value is data, never a
    wildcard, so a value holding * or ? cannot widen the pattern it lands in."""
    chunks: list[_Chunk] = []
    for kind, text, default in tokens:
        if kind != _VARIABLE:
            chunks.append((text, kind == _TEXT))
            continue
        value = context.variable(text) if context is not None else None
        if value is None:
            value = default
        if value is None:
            # AWS: with no value, "StringEquals" and "StringLike" do not match, inverted operators do, and a
            # Resource or NotResource entry "will not match any resource" (Variables and tags page).
            return None
        chunks.append((value, False))
    return tuple(chunks)


_Glob = tuple[tuple[str, str, bool], ...]  # (kind "c" | "?" | "*", literal character, wildcard may cross ":")


class _Matcher(Protocol):
    def fullmatch(self, string: str, /) -> object: ...


@lru_cache(maxsize=4096)
def _matcher(chunks: tuple[_Chunk, ...], style: str) -> _Matcher:
    glob = _glob(chunks, style)
    return _Automaton(glob) if _backtracks(glob) else _regex(_source(glob))


@lru_cache(maxsize=4096)
def _regex(source: str) -> re.Pattern[str]:
    return re.compile(source, re.DOTALL)


def _glob(chunks: tuple[_Chunk, ...], style: str) -> _Glob:
    """A policy glob as tokens. Only * and ? are special; everything else is a literal character."""
    chars = [(char, wild) for text, wild in chunks for char in text]
    glob: list[tuple[str, str, bool]] = []
    colons = 0
    for position, (char, wild) in enumerate(chars):
        if not wild or char not in "*?":
            glob.append(("c", char, False))
            colons += char == ":"
            continue
        # AWS: resource wildcards work "within the individual segments of an ARN (the parts separated by
        # colons)", but "If the * wildcard is the last character of a resource ARN segment, it can expand to
        # match beyond the colon boundaries" (Resource element page). ArnLike: "Each of the six colon-delimited
        # components of the ARN is checked separately" (Condition operators page); the sixth runs to the end.
        crosses = (
            style == "like"
            or (style == "arn" and colons >= 5)
            or (style == "resource" and char == "*" and (position + 1 == len(chars) or chars[position + 1][0] == ":"))
        )
        if char == "*" and glob and glob[-1][0] == "*":
            glob[-1] = ("*", "", glob[-1][2] or crosses)  # two stars in a row are one star
        else:
            glob.append((char, "", crosses))
    return tuple(glob)


def _source(glob: _Glob) -> str:
    """The glob as a regex: literal characters go through re.escape, so no policy text is ever regex syntax."""
    wildcards = {("*", True): ".*", ("*", False): "[^:]*", ("?", True): ".", ("?", False): "[^:]"}
    return "".join(re.escape(char) if kind == "c" else wildcards[kind, crosses] for kind, char, crosses in glob)


def _backtracks(glob: _Glob) -> bool:
    """Two stars with pattern after them let a backtracking regex take polynomial time in the subject's length
    ("*a*a*a*a*a*b" against 120 characters takes seconds), and subjects come from requests."""
    return sum(kind == "*" for kind, _, _ in glob[:-1]) >= 2


class _Automaton:
    """A glob matched as a bit-parallel NFA: linear in the subject, for globs a regex could backtrack on.
    Bit i of the state means "the first i tokens match what has been read"."""

    __slots__ = ("_accept", "_advance", "_advance_colon", "_advance_other", "_stars", "_stay_colon", "_stay_other")

    def __init__(self, glob: _Glob) -> None:
        literal: dict[str, int] = {}
        one_any = one_plain = star_any = star_plain = 0
        for position, (kind, char, crosses) in enumerate(glob):
            bit = 1 << position
            if kind == "c":
                literal[char] = literal.get(char, 0) | bit
            elif kind == "?":
                one_any, one_plain = (one_any | bit, one_plain) if crosses else (one_any, one_plain | bit)
            else:
                star_any, star_plain = (star_any | bit, star_plain) if crosses else (star_any, star_plain | bit)
        self._advance = {char: bits | one_any | one_plain for char, bits in literal.items() if char != ":"}
        self._advance_other = one_any | one_plain
        self._advance_colon = literal.get(":", 0) | one_any
        self._stay_other = star_any | star_plain
        self._stay_colon = star_any
        self._stars = star_any | star_plain
        self._accept = 1 << len(glob)

    def fullmatch(self, string: str, /) -> bool:
        state = 1 | (1 & self._stars) << 1  # no two stars are adjacent, so one step closes over empty stars
        for char in string:
            if char == ":":
                state = (state & self._advance_colon) << 1 | (state & self._stay_colon)
            else:
                state = (state & self._advance.get(char, self._advance_other)) << 1 | (state & self._stay_other)
            state |= (state & self._stars) << 1
            if not state:
                return False
        return bool(state & self._accept)


def _after_fifth_colon(text: str) -> int:
    position = -1
    for _ in range(5):
        position = text.find(":", position + 1)
        if position < 0:
            return len(text)
    return position + 1


# --- Action, NotAction, Resource, NotResource ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Names:
    everything: bool
    exact: frozenset[str]
    pattern: re.Pattern[str] | None  # the wildcard entries, as one alternation of escaped globs
    automata: tuple[_Automaton, ...] = ()  # wildcard entries a regex could backtrack on
    templates: tuple[tuple[_Token, ...], ...] = ()  # resources with variables, resolved per request
    wild: bool = False  # whether matches() has anything to try

    def matches(self, name: str, context: _Context) -> bool:
        """The wildcard and variable entries; the caller has already tried `everything` and `exact`."""
        if self.pattern is not None and self.pattern.fullmatch(name):
            return True
        if any(automaton.fullmatch(name) for automaton in self.automata):
            return True
        for tokens in self.templates:
            chunks = _resolve(tokens, context)
            if chunks is not None and _matcher(chunks, "resource").fullmatch(name):
                return True
        return False


def _names(exact: set[str], globs: list[_Glob], templates: Sequence[tuple[_Token, ...]] = ()) -> _Names:
    safe = [_source(glob) for glob in globs if not _backtracks(glob)]
    pattern = _regex("|".join(f"(?:{source})" for source in safe)) if safe else None
    automata = tuple(_Automaton(glob) for glob in globs if _backtracks(glob))
    return _Names(False, frozenset(exact), pattern, automata, tuple(templates), bool(globs or templates))


_EVERYTHING: Final = _Names(True, frozenset(), None)


def _actions(entries: Sequence[str]) -> _Names:
    """AWS: "The prefix and the action name are case insensitive", and * and ? may appear in the action name
    (Action element page). The service prefix is compared literally, so "ec2:*" never covers "ec2messages:*"."""
    exact: set[str] = set()
    globs: list[_Glob] = []
    for entry in (entry.lower() for entry in entries):
        if entry == "*":
            return _EVERYTHING
        service, colon, name = entry.partition(":")
        if not colon or not any(char in name for char in "*?"):
            exact.add(entry)
        else:
            globs.append(_glob(((service + ":", False), (name, True)), "like"))
    return _names(exact, globs)


def _resources(entries: Sequence[str], variables: bool) -> _Names:
    """Resource matching is case-sensitive. Variables only count in the resource part, after the fifth colon:
    "You can't use a variable to replace parts of the ARN before the fifth colon" (Variables and tags page)."""
    exact: set[str] = set()
    globs: list[_Glob] = []
    templates: list[tuple[_Token, ...]] = []
    for entry in entries:
        if entry == "*":
            return _EVERYTHING
        split = _after_fifth_colon(entry)
        tokens = ((_TEXT, entry[:split], None), *_tokens(entry[split:], variables))
        chunks = None if any(kind == _VARIABLE for kind, _, _ in tokens) else _resolve(tokens, None)
        if chunks is None:
            templates.append(tokens)
        elif not any(wild and ("*" in text or "?" in text) for text, wild in chunks):
            exact.add(_joined(chunks))
        else:
            globs.append(_glob(chunks, "resource"))
    return _names(exact, globs, templates)


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


def _joined(chunks: tuple[_Chunk, ...]) -> str:
    return "".join(text for text, _ in chunks)


def _found(value: str, pattern: _Matcher) -> bool:
    return bool(pattern.fullmatch(value))


def _contains(address: Any, network: Any) -> bool:
    return bool(address in network)  # an IPv4 address is simply not in an IPv6 network


@dataclass(frozen=True, slots=True)
class _Family:
    prepare: Callable[[tuple[_Chunk, ...]], Any]  # resolved policy value -> comparable; None matches nothing
    convert: Callable[[str], Any]  # request value -> comparable; None matches nothing
    variables: bool  # "string operators or the ARN operators" and Bool take variables (Condition operators)


_STRING = _Family(_joined, str, True)
_FOLDED = _Family(lambda chunks: _joined(chunks).casefold(), str.casefold, True)
_LIKE = _Family(lambda chunks: _matcher(chunks, "like"), str, True)
_ARN = _Family(lambda chunks: _matcher(chunks, "arn"), str, True)
_NUMERIC = _Family(lambda chunks: _number(_joined(chunks).strip()), lambda text: _number(text.strip()), False)
_DATE = _Family(lambda chunks: _date(_joined(chunks).strip()), lambda text: _date(text.strip()), False)
_BOOL = _Family(lambda chunks: _boolean(_joined(chunks)), _boolean, True)
_BINARY = _Family(lambda chunks: _binary(_joined(chunks)), _binary, False)
_IP = _Family(lambda chunks: _network(_joined(chunks)), _address, False)


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
    templates: tuple[tuple[_Token, ...], ...] = ()  # policy values with variables, prepared per request

    def holds(self, context: _Context) -> bool:
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


def _prepare(family: _Family, tokens: tuple[_Token, ...], context: _Context | None) -> Any:
    chunks = _resolve(tokens, context)
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
    templates: list[tuple[_Token, ...]] = []
    for text in texts:
        tokens = _tokens(text, variables and found.family.variables)
        if any(kind == _VARIABLE for kind, _, _ in tokens):
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


# --- Statements and documents -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statement:
    index: int
    deny: bool
    actions: _Names
    not_action: bool
    resources: _Names
    not_resource: bool
    conditions: tuple[_Clause, ...]


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


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


def _statement(index: int, raw: Mapping[str, Any], variables: bool) -> _Statement:
    clauses = _conditions(raw.get("Condition", {}), variables)
    if raw.get("Effect") not in ("Allow", "Deny"):  # "The Effect value is case sensitive" (Effect element)
        clauses.append(_NEVER)
    return _Statement(
        index=index,
        deny=raw.get("Effect") == "Deny",
        actions=_actions(_strings(raw.get("Action", raw.get("NotAction")))),
        not_action="Action" not in raw and "NotAction" in raw,
        resources=_resources(_strings(raw.get("Resource", raw.get("NotResource"))), variables),
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
