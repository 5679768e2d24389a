"""What `roleport serve` checks and prepares before it starts answering: the data dir, the modes of the files that hold
secrets, the database, and the listening socket. Each problem is one `ConfigError` line, never a traceback."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from roleport.config import CREDENTIALS_FILE, ConfigError
from roleport.store import schema
from roleport.store.db import Store

# The database, its WAL and shared-memory files, the root key pair and the server file all hold secrets (access-key
# secrets, role-session secrets, the metadata token key): their owner alone may read them.
SECRET_FILES = ("roleport.db", "roleport.db-wal", "roleport.db-shm", CREDENTIALS_FILE, "server.json")
DIR_MODE, FILE_MODE = 0o700, 0o600

Say = Callable[[str], None]


def prepare_data_dir(data_dir: Path, say: Say) -> None:
    """Create the data dir for its owner alone, or tighten an existing one and its secret files (saying so once:
    after that the modes are right)."""
    try:
        data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as failure:
        raise ConfigError(f"cannot create the data dir {data_dir}: {_reason(failure)}") from None
    if not data_dir.is_dir():
        raise ConfigError(f"the data dir {data_dir} is not a folder")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"the data dir {data_dir} is not writable; choose another with --data-dir")
    wanted = {data_dir: DIR_MODE, **{data_dir / name: FILE_MODE for name in SECRET_FILES}}
    loosened = {path: mode for path, mode in ((path, _mode(path)) for path in wanted) if mode & ~wanted[path]}
    for path in loosened:
        try:
            path.chmod(wanted[path])
        except OSError as failure:
            raise ConfigError(f"cannot restrict {path} to its owner: {_reason(failure)}") from None
    if loosened:
        modes = ", ".join(f"{path.name} (was {mode:04o})" for path, mode in loosened.items())
        say(f"roleport: made {modes} readable by their owner only: they hold secret keys")


def _mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0


def database_url(url: str) -> str:
    """The SQLAlchemy URL for what users write: `postgres://` and `postgresql://` (libpq's spellings) mean PostgreSQL
    through psycopg, the driver roleport installs; SQLite URLs pass as they are."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ConfigError(f"--database-url {url!r} is not a URL: use postgresql://USER@HOST:PORT/DB or sqlite:///PATH")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("postgresql+psycopg", "sqlite") or scheme.startswith("sqlite+"):
        return url
    raise ConfigError(
        f"--database-url: unknown scheme {scheme!r}; roleport stores in PostgreSQL (postgresql://USER@HOST:PORT/DB) "
        "or SQLite (sqlite:///PATH)"
    )


def shown_url(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def check_store(url: str) -> None:
    """Open the store and prove it writable now (a write that changes nothing), so a missing database, a refused
    login or a read-only file is one line here instead of a traceback once the server runs."""
    shown = shown_url(url)
    try:
        store = Store(url)
    except (ArgumentError, NoSuchModuleError) as failure:
        raise ConfigError(f"--database-url {shown}: {_one_line(failure)}") from None
    except ModuleNotFoundError as failure:
        raise ConfigError(
            f"--database-url {shown} needs the {failure.name} package: pip install -e '.[postgresql]'"
        ) from None
    try:
        store.create()
        with store.transaction(write=True, journaled=False) as tx:
            tx.execute(update(schema.counters).where(schema.counters.c.name == "journal").values(value=0))
    except Exception as failure:
        # SQLAlchemy's errors, and the drivers' own (sqlite3, psycopg) on paths SQLAlchemy does not wrap.
        ours = isinstance(failure, SQLAlchemyError | OSError | RuntimeError)
        if not ours and type(failure).__module__.split(".")[0] not in ("sqlite3", "psycopg"):
            raise
        raise ConfigError(f"cannot use the database {shown}: {_one_line(failure)}") from None
    finally:
        store.dispose()


def bind(host: str, port: int, flag: str = "--host") -> socket.socket:
    """The listening socket, bound and listening here so that a taken port or a bad address is one clear line, and
    `--port 0` reports the port the OS chose. It listens at once: with SO_REUSEADDR two sockets may both bind one
    port, and only the first to listen has it, so a server that bound without listening could say it was ready on
    a port another server answers."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as failure:
        raise ConfigError(f"{flag} {host!r} is not an address of this machine: {_one_line(failure)}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse a port in TIME_WAIT at once
    try:
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog
    except OSError as failure:
        sock.close()
        if failure.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use; choose another with --port") from None
        if failure.errno == errno.EACCES:
            raise ConfigError(f"cannot listen on port {port}: permission denied; choose another with --port") from None
        raise ConfigError(f"cannot listen on {flag} {host} port {port}: {_reason(failure)}") from None
    sock.set_inheritable(True)
    return sock


def _reason(failure: OSError) -> str:
    return failure.strerror or str(failure)


def _one_line(failure: BaseException) -> str:
    """The driver's own words (SQLAlchemy wraps them with SQL and a link), on one line."""
    inner = getattr(failure, "orig", None) or failure
    return " ".join(str(inner).split()) or type(inner).__name__
