"""`DATA_DIR/server.json`: what a running `roleport serve` tells `roleport env` and `roleport exec` about itself.

Written once the server accepts connections and removed when it stops, so `env` and `exec` use the server's real
endpoint (the port the OS chose for `--port 0` included) and the root keys it actually verifies with, instead of
describing a server from their own flags. It holds the root secret, so it is created readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

NAME = "server.json"


class UnreadableServerFile(Exception):
    """The file exists but cannot be read or is not what `serve` writes."""


@dataclass(frozen=True, slots=True)
class ServerFile:
    url: str
    pid: int
    region: str
    account_id: str
    access_key_id: str
    secret_access_key: str
    store: str


def write(data_dir: Path, record: ServerFile) -> None:
    """Replace the file atomically (write beside it, then rename), so a reader never sees half of it."""
    path = data_dir / NAME
    partial = data_dir / f".{NAME}.{os.getpid()}"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(asdict(record), handle)
    os.replace(partial, path)


def read(data_dir: Path) -> ServerFile | None:
    """The record, or None when no server has left one in this data dir."""
    path = data_dir / NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as failure:
        raise UnreadableServerFile(f"cannot read {path}: {failure.strerror}") from None
    try:
        found = json.loads(text)
        return ServerFile(**{name: found[name] for name in ServerFile.__dataclass_fields__})
    except (ValueError, KeyError, TypeError):
        raise UnreadableServerFile(f"{path} is not a file that `roleport serve` wrote; remove it") from None


def remove(data_dir: Path, pid: int) -> None:
    """Remove the file if it is still this process's (another server may have started on the data dir since)."""
    try:
        current = read(data_dir)
    except UnreadableServerFile:
        return
    if current is not None and current.pid == pid:
        (data_dir / NAME).unlink(missing_ok=True)
