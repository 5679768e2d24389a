"""The clocks roleport's domain time comes from: the system's, or one that tests move by hand.

Signatures are always checked against real time (clients sign with their own clock); everything else that reads
time (credential expiry and rotation, EC2 transitions, IMDS token TTLs, CreateDate) reads the server's clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# The span a controlled clock may show. The server adds hours to days to its time (credential expiry, presigned
# windows, propagation delays), so the top stays far below datetime's year 9999, where that arithmetic would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

# What reads the server's time takes one of these: system_clock or a ControlledClock.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ControlledClock:
    """Stands still until told to move, so a test can let an hour of credential rotation pass in a moment."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or system_clock()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward; ValueError for a negative or non-finite amount, or one that passes LATEST."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the clock only moves forward, by a finite number of seconds")
        with self._lock:
            if seconds > (LATEST - self._now).total_seconds():
                raise ValueError(f"the clock cannot pass {LATEST.isoformat()}")
            self._now = self._now + timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> datetime:
        """Show `when` (UTC if it names no zone); ValueError outside EARLIEST..LATEST."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if not EARLIEST <= when <= LATEST:
            raise ValueError(f"the clock stays between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
        with self._lock:
            self._now = when
            return self._now
