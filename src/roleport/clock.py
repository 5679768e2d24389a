"""The clocks roleport's domain time comes from: the system's, or one that tests move by hand.

Signatures are always checked against real time (clients sign with their own clock); everything else that reads
time (credential expiry and rotation, EC2 transitions, IMDS token TTLs, CreateDate) reads the server's clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


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
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._now = when if when.tzinfo else when.replace(tzinfo=UTC)
            return self._now
