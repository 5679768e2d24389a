"""Model (Java) regex patterns as whole-value matchers that read each pattern the way Java's matches() does."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Final, overload

import regex

Matcher = Callable[[str], object]

# Java's \w, \d and \s are ASCII-only, while the regex module's are Unicode (and its ASCII flag would also
# shrink \p{L} to ASCII), so the shorthands are spelled out instead.
_JAVA_SHORTHANDS: Final = {"w": "a-zA-Z0-9_", "d": "0-9", "s": " \\t\\n\\x0B\\f\\r"}
# On ASCII text these Unicode properties are exactly these sets.
_ASCII_PROPERTIES: Final = {"L": "a-zA-Z", "N": "0-9", "Z": " "}
# Java's "." stops at every line terminator, not only \n.
_JAVA_DOT: Final = "[^\\n\\r\\x85\\u2028\\u2029]"


@lru_cache(maxsize=1024)
def compile_java_pattern(pattern: str) -> Matcher:
    """A whole-value matcher for a model (Java) regex, compiled once, as Java's matches() reads it."""
    translated = _java_to_regex(pattern)
    fast = _stdlib_matcher(translated)
    if fast is not None:
        return fast
    # regex knows \p{L}, \p{Z}, \p{N}; V1 reads a nested [..] inside a class as a union, as Java does.
    full: Matcher = regex.compile(translated, regex.V1).fullmatch
    ascii_only = _java_to_regex(pattern, ascii_only=True)
    twin = _stdlib_matcher(ascii_only) if ascii_only is not None else None
    if twin is None:
        return full

    def matches(value: str) -> object:
        # On ASCII text \p{L}, \p{N} and \p{Z} are exactly [a-zA-Z], [0-9] and " ", and most values are ASCII.
        return twin(value) if value.isascii() else full(value)

    return matches


def _stdlib_matcher(translated: str) -> Matcher | None:
    # The stdlib engine is two to three times faster than regex. It lacks \p{..}, and any warning (a possible
    # nested set) or error means its reading could differ from Java's, so those go to regex.
    if "\\p" in translated or "\\P" in translated:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(translated).fullmatch
        except (re.error, FutureWarning):
            return None


@overload
def _java_to_regex(pattern: str) -> str: ...
@overload
def _java_to_regex(pattern: str, *, ascii_only: bool) -> str | None: ...
def _java_to_regex(pattern: str, *, ascii_only: bool = False) -> str | None:
    """Spell out Java's ASCII shorthands and line-terminator dot; with ascii_only, also the L, N and Z
    properties as their ASCII members (any other property means the pattern has no ASCII twin)."""
    out: list[str] = []
    depth = 0  # character-class nesting
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            body = _JAVA_SHORTHANDS.get(escaped.lower())
            if ascii_only and escaped in "pP":
                close = pattern.find("}", i)
                body = _ASCII_PROPERTIES.get(pattern[i + 3 : close]) if escaped == "p" and close > 0 else None
                if body is None:
                    return None
                out.append(body if depth else f"[{body}]")
                i = close + 1
                continue
            if body is None:
                out.append(pattern[i : i + 2])
            elif escaped.isupper():
                out.append(f"[^{body}]")
            else:
                out.append(body if depth else f"[{body}]")
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(_JAVA_DOT if char == "." and not depth else char)
        i += 1
    return "".join(out)
