"""The WAL-index header of an SQLite database in WAL mode: the first 48 bytes of its `-shm` file
(sqlite.org/walformat.html), which every commit rewrites (the frame count, checksums and change counter; a WAL
that starts over gets new salts), by any connection of any process. SQLite's own readers compare it to learn
whether anything changed; so does the read cache (Store.change_marker), with one pread.

Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included, and with its
locks gone another process may rebuild the -shm under the connections still open. So there is one descriptor per
-shm file for the whole process, shared by every store that reads it, and it is closed only when the last of them
is done, after their connections are closed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

HEADER = 48  # bytes of the first copy of the WAL-index header

_lock = threading.Lock()
_open: dict[tuple[int, int], list[int]] = {}  # (device, inode) of a -shm file → [descriptor, users]


def acquire(driver: Any) -> int | None:
    """A descriptor of the -shm file of the database that `driver` has open (an sqlite3 connection, which keeps the
    file in place while it stays open), or None when the database is not in WAL mode or has no such file."""
    if str(driver.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        return None  # a -shm left over from another mode says nothing about this database
    # The file as SQLite opened it (absolute, symlinks resolved), whatever the working directory is now.
    path = next((row[2] for row in driver.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:
        return None  # a temporary or in-memory database
    shm = f"{path}-shm"
    with _lock:
        try:
            status = os.stat(shm)  # not a descriptor: even a moment's one, closed, would drop the locks
        except OSError:
            return None
        key = (status.st_dev, status.st_ino)
        found = _open.get(key)
        if found is not None:
            found[1] += 1
            return found[0]
        try:
            fd = os.open(shm, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        _open[key] = [fd, 1]
        return fd


def release(fd: int) -> None:
    """This store is done with the descriptor (its connections closed); the last user closes it."""
    with _lock:
        for key, (held, users) in list(_open.items()):
            if held == fd:
                if users > 1:
                    _open[key][1] = users - 1
                else:
                    del _open[key]
                    os.close(fd)
                return


def read(fd: int) -> bytes:
    return os.pread(fd, HEADER, 0)
