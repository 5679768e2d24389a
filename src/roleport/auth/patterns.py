"""Policy text matching: the request's condition keys as policy variables, ${...} substitution, wildcard globs
(as a regex, or a linear-time automaton where a regex could backtrack), and the Action/Resource name sets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol


class Context:
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

_TEXT, _LITERAL, VARIABLE = 0, 1, 2
Token = tuple[int, str, str | None]  # (kind, policy text | literal | lower-cased key, variable default)
Chunk = tuple[str, bool]  # (text, whether * and ? in it are wildcards)
_VARIABLE_RE: Final = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY: Final = re.compile(r"\s*([^\s,']+)\s*(?:,\s*'([^']*)'\s*)?")


def tokenize(text: str, variables: bool) -> tuple[Token, ...]:
    """Split policy text around ${key} and ${key, 'default'}. ${*}, ${?} and ${$} stand for the literal
    character (Variables and tags page, "Special characters"; "Specifying default values")."""
    if not variables or "${" not in text:
        return ((_TEXT, text, None),)
    tokens: list[Token] = []
    position = 0
    for found in _VARIABLE_RE.finditer(text):
        if found.start() > position:
            tokens.append((_TEXT, text[position : found.start()], None))
        body = found.group(1)
        if body in ("*", "?", "$"):
            tokens.append((_LITERAL, body, None))
        elif variable := _VARIABLE_BODY.fullmatch(body):
            tokens.append((VARIABLE, variable.group(1).lower(), variable.group(2)))
        else:
            tokens.append((_LITERAL, found.group(0), None))
        position = found.end()
    if position < len(text):
        tokens.append((_TEXT, text[position:], None))
    return tuple(tokens)


def resolve(tokens: tuple[Token, ...], context: Context | None) -> tuple[Chunk, ...] | None:
    """Substitute variables; None when one has no value and no default. A substituted value is data, never a
    wildcard, so a value holding * or ? cannot widen the pattern it lands in."""
    chunks: list[Chunk] = []
    for kind, text, default in tokens:
        if kind != VARIABLE:
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


def joined(chunks: tuple[Chunk, ...]) -> str:
    return "".join(text for text, _ in chunks)


_Glob = tuple[tuple[str, str, bool], ...]  # (kind "c" | "?" | "*", literal character, wildcard may cross ":")


class Matcher(Protocol):
    def fullmatch(self, string: str, /) -> object: ...


@lru_cache(maxsize=4096)
def matcher(chunks: tuple[Chunk, ...], style: str) -> Matcher:
    glob = _glob(chunks, style)
    return _Automaton(glob) if _backtracks(glob) else _regex(_source(glob))


@lru_cache(maxsize=4096)
def _regex(source: str) -> re.Pattern[str]:
    return re.compile(source, re.DOTALL)


def _glob(chunks: tuple[Chunk, ...], style: str) -> _Glob:
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
class Names:
    everything: bool
    exact: frozenset[str]
    pattern: re.Pattern[str] | None  # the wildcard entries, as one alternation of escaped globs
    automata: tuple[_Automaton, ...] = ()  # wildcard entries a regex could backtrack on
    templates: tuple[tuple[Token, ...], ...] = ()  # resources with variables, resolved per request
    wild: bool = False  # whether matches() has anything to try

    def matches(self, name: str, context: Context) -> bool:
        """The wildcard and variable entries; the caller has already tried `everything` and `exact`."""
        if self.pattern is not None and self.pattern.fullmatch(name):
            return True
        if any(automaton.fullmatch(name) for automaton in self.automata):
            return True
        for tokens in self.templates:
            chunks = resolve(tokens, context)
            if chunks is not None and matcher(chunks, "resource").fullmatch(name):
                return True
        return False


def _names(exact: set[str], globs: list[_Glob], templates: Sequence[tuple[Token, ...]] = ()) -> Names:
    safe = [_source(glob) for glob in globs if not _backtracks(glob)]
    pattern = _regex("|".join(f"(?:{source})" for source in safe)) if safe else None
    automata = tuple(_Automaton(glob) for glob in globs if _backtracks(glob))
    return Names(False, frozenset(exact), pattern, automata, tuple(templates), bool(globs or templates))


_EVERYTHING: Final = Names(True, frozenset(), None)


def action_names(entries: Sequence[str]) -> Names:
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


def resource_names(entries: Sequence[str], variables: bool) -> Names:
    """Resource matching is case-sensitive. Variables only count in the resource part, after the fifth colon:
    "You can't use a variable to replace parts of the ARN before the fifth colon" (Variables and tags page)."""
    exact: set[str] = set()
    globs: list[_Glob] = []
    templates: list[tuple[Token, ...]] = []
    for entry in entries:
        if entry == "*":
            return _EVERYTHING
        split = _after_fifth_colon(entry)
        tokens = ((_TEXT, entry[:split], None), *tokenize(entry[split:], variables))
        chunks = None if any(kind == VARIABLE for kind, _, _ in tokens) else resolve(tokens, None)
        if chunks is None:
            templates.append(tokens)
        elif not any(wild and ("*" in text or "?" in text) for text, wild in chunks):
            exact.add(joined(chunks))
        else:
            globs.append(_glob(chunks, "resource"))
    return _names(exact, globs, templates)
