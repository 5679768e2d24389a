"""Answers to repeated IAM reads, kept while the store is unchanged.

A client that polls (a waiter, a fleet of instances, a test's retry loop) asks for the same profile or role again and
again; producing the answer (a transaction, the rows, the XML) is most of what such a call costs. Each answer is kept
with the store's change marker taken before it was read (Store.change_marker) and served only while the marker is
the same, so any write, from this process or another one on the same database, retires every kept answer. Only the
account's root calls are answered from here: theirs need no authorization, which would depend on more than the
store (the time, the caller's address, the session).
"""

from __future__ import annotations

from collections.abc import Hashable

# An entry larger than this is not kept (a page of a thousand roles, or a request carrying a long parameter);
# together the kept entries, keys included, stay under the budget.
_LARGEST_BODY = 256 * 1024
_BUDGET = 32 * 1024 * 1024
_ENTRY = 512  # about what an entry's dict slot and tuples cost besides its key and body
_OBJECT = 64  # about what CPython spends on a string or tuple besides its characters


def key_size(key: Hashable) -> int:
    """About the bytes a key holds: its strings, in the tuples the pipeline builds them into. The key is the
    request's whole form, so a client decides its size (a 100 KB parameter the operation ignores is still in it)."""
    if isinstance(key, str | bytes):
        return len(key) + _OBJECT
    if isinstance(key, tuple):
        return sum(key_size(part) for part in key) + _OBJECT
    return _OBJECT


class ReadCache:
    """Serialized answers by request, in two parts around the request id, which differs on every answer."""

    __slots__ = ("_answers", "_size")

    def __init__(self) -> None:
        self._answers: dict[Hashable, tuple[Hashable, bytes, bytes]] = {}
        self._size = 0

    def get(self, key: Hashable, marker: Hashable) -> tuple[bytes, bytes] | None:
        found = self._answers.get(key)
        if found is None or found[0] != marker:
            return None
        return found[1], found[2]

    def put(self, key: Hashable, marker: Hashable, head: bytes, tail: bytes) -> None:
        weight = key_size(key) + _ENTRY
        size = len(head) + len(tail) + weight
        if size > _LARGEST_BODY:
            return
        old = self._answers.get(key)
        if old is not None:
            self._size -= len(old[1]) + len(old[2]) + weight  # an equal key weighs the same
        elif self._size + size > _BUDGET:
            # Starting over is cheaper than tracking use, and after a write most kept answers are stale anyway.
            self._answers.clear()
            self._size = 0
        self._answers[key] = (marker, head, tail)
        self._size += size

    def __len__(self) -> int:
        return len(self._answers)
