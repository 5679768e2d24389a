"""IAM condition operators (IAM JSON policy elements: Condition operators): value parsers for numbers, dates,
booleans, binary and IP addresses, the operator families, and the clauses a statement's Condition block compiles to."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from roleport.auth.patterns import VARIABLE, Chunk, Context, Matcher, Token, joined, matcher, resolve, tokenize


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
class Clause:
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


NEVER: Final = Clause("", None, "", False, ())  # a Null check that accepts no answer: never holds


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


def _clause(name: str, key: str, raw: Any, variables: bool) -> Clause:
    quantifier, _, base = name.lower().rpartition(":")
    if_exists = base.endswith("ifexists") and base != "ifexists"
    base = base.removesuffix("ifexists") if if_exists else base
    texts = _condition_values(raw)
    if base == "null" and not if_exists and not quantifier and texts is not None:
        # "true (the key doesn't exist - it is null) or false (the key exists and its value is not null)".
        return Clause(key.lower(), None, "", False, tuple(text.lower() == "true" for text in texts if _boolean(text)))
    found = _OPERATORS.get(base)
    if found is None or quantifier not in ("", _FOR_ALL, _FOR_ANY) or texts is None:
        # An operator AWS does not define (or a malformed value list) never matches, so its statement does not
        # apply - for a Deny, that means it denies nothing. IAM refuses such policies when they are written
        # (MalformedPolicyDocument), so only a document that skipped the grammar check can get here.
        return NEVER
    values: list[Any] = []
    templates: list[tuple[Token, ...]] = []
    for text in texts:
        tokens = tokenize(text, variables and found.family.variables)
        if any(kind == VARIABLE for kind, _, _ in tokens):
            templates.append(tokens)
        elif (value := _prepare(found.family, tokens, None)) is not None:  # None: a value nothing can match
            values.append(value)
    return Clause(key.lower(), found, quantifier, if_exists, tuple(values), tuple(templates))


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


def clauses_of(block: Any, variables: bool) -> list[Clause]:
    """Every operator and every key in the block becomes one clause; all must hold (Condition element page)."""
    if not isinstance(block, dict):
        return [NEVER]
    clauses: list[Clause] = []
    for name, keys in block.items():
        if not isinstance(keys, dict):
            clauses.append(NEVER)
            continue
        clauses.extend(_clause(name, key, values, variables) for key, values in keys.items())
    return clauses
