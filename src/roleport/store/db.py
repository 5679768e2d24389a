"""The store: SQLAlchemy Core statements compiled once per dialect and run on pooled DBAPI connections.

SQLAlchemy owns the schema, the SQL dialects (SQLite, PostgreSQL) and the connection pool. Executing through its
Connection costs 60-200 µs per statement and 80 µs per transaction here, more than a whole request may take, so
statements are compiled once (``Prepared``) and executed on the pool's driver connection directly (about 5 µs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from sqlalchemy import Engine, Table, bindparam, create_engine, event, func, select
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import ClauseElement

from roleport.errors import AwsError
from roleport.store import generation, schema, wal_index
from roleport.store.statements import PER_CALL, Compiled, bind, compile_statement, read_rows
from roleport.store.statements import Prepared as Prepared  # handlers take the store's vocabulary from here
from roleport.store.statements import Row as Row

_MISSING = object()
# Tx.lock_owner's statement for each owner table (and strength of lock), and the name of the table's key.
_LOCKS: dict[tuple[str, bool], tuple[Prepared, str]] = {}
# The PostgreSQL advisory lock one-time setup holds (the schema, the seeded rows, a reset), so that server processes
# starting together on one database set it up one after another instead of failing on each other's rows; any
# constant of roleport's own ("roleport" in ASCII).
SETUP_LOCK = 0x726F6C65706F7274


class Result:
    """The rows of one statement, fetched eagerly (a transaction is short and its results are small)."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]


class Tx:
    """One transaction on one pooled driver connection."""

    __slots__ = ("cache", "dialect", "driver", "iam_changed", "integrity_error", "journal", "memo", "watching")

    def __init__(
        self,
        driver: Any,
        dialect: Dialect,
        integrity_error: type[Exception],
        cache: dict[Any, Compiled],
        memo: dict[Any, Any],
        journal: Any = None,
        write: bool = False,
    ) -> None:
        self.driver = driver
        self.dialect = dialect
        self.integrity_error = integrity_error
        self.cache = cache
        # Values derived from the store that are keyed so they can never go stale: by rows that never change once
        # written (a policy version's document) or by the IAM change counter. Shared by every transaction, so a hot
        # read need not fetch or parse them again.
        self.memo = memo
        # While a propagation delay is set, a write transaction keeps the before-image of what it changes in the
        # tables other services read (store/journal.py); None otherwise, which costs nothing.
        self.journal = journal
        # A write transaction watches its statements until the first that changes IAM (store/generation.py): the
        # generation then moves at commit, and what the transaction derives from there on stays its own.
        self.watching = write
        self.iam_changed = False

    def execute(
        self, statement: ClauseElement | Prepared, params: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Result:
        if self.journal is not None:
            self.journal.before(self, statement, params)
        if self.watching and generation.changes_iam(statement):
            self.note_iam_changed()
        if isinstance(params, list):
            return self._execute_many(statement, params)
        compiled, values = self._compile(statement, params)
        if params:
            values.update(params)
        cursor = self.driver.cursor()
        try:
            cursor.execute(compiled.sql, bind(values, compiled.names))
            rows = read_rows(cursor, compiled) if cursor.description else []
            return Result(rows, cursor.rowcount)
        finally:
            cursor.close()

    def note_iam_changed(self) -> None:
        """IAM changed in this transaction: move the generation at commit, and keep what is derived from now on in a
        memo of this transaction's own, since the shared one is keyed by the generation this one has not moved yet."""
        self.watching = False
        self.iam_changed = True
        self.memo = {}

    def bound_values(self, statement: ClauseElement | Prepared, params: dict[str, Any] | None) -> dict[str, Any]:
        """Every value a statement binds, by bind name: its own literals with the call's parameters over them."""
        _compiled, values = self._compile(statement, params)
        values.update(params or {})
        return values

    def remember(self, key: Any, make: Callable[[], Any]) -> Any:
        """The memo's value for key, made (and kept) on first use; the memo is bounded by starting over when full."""
        found = self.memo.get(key, _MISSING)
        if found is _MISSING:
            if len(self.memo) > 20_000:
                self.memo.clear()
            found = self.memo[key] = make()
        return found

    def insert_unique(
        self,
        statement: ClauseElement | Prepared,
        params: dict[str, Any] | None,
        error: AwsError | Callable[[], AwsError],
    ) -> None:
        """Insert, turning a unique or primary-key violation into the AWS error for it (or made by it, so a hot path
        need not build an error it seldom raises); the transaction then rolls back, so the call changes nothing."""
        try:
            self.execute(statement, params)
        except self.integrity_error:
            raise (error if isinstance(error, AwsError) else error()) from None

    def lock_owner(self, table: Table, row: Row, *, shared: bool = False) -> Row | None:
        """Hold a row that owns others (a role its tags and policies, a policy its versions...) until the transaction
        ends, and return it as it now is; None when a writer that held it first deleted it.

        Every read-modify-write of what the row owns (count then insert, delete then insert) takes this first, so
        concurrent writers of one owner run one after another and each counts what the ones before it committed.
        On SQLite that is already so: a write transaction begins with BEGIN IMMEDIATE, which holds the database's one
        write lock until it ends, so the row the caller read in this transaction is current and nothing is run. On
        PostgreSQL, SELECT … FOR UPDATE; under READ COMMITTED each later statement then sees what the writer that
        held the row before committed, so the row itself is read again here.

        `shared` holds the row only against deletion (FOR KEY SHARE), for a caller that refers to it without changing
        what it owns (attaching a policy): such callers do not wait for each other, nor make a writer of the row that
        already holds it wait for them."""
        if self.dialect.name == "sqlite":
            return row
        found = _LOCKS.get((table.name, shared))
        if found is None:
            [key] = table.primary_key.columns  # owners have a key of one column
            query = select(table).where(key == bindparam("key"))
            lock = Prepared(query.with_for_update(read=True, key_share=True) if shared else query.with_for_update())
            found = _LOCKS[(table.name, shared)] = (lock, key.key)
        statement, key_name = found
        return self.execute(statement, {"key": getattr(row, key_name)}).first()

    def _execute_many(self, statement: ClauseElement | Prepared, params: list[dict[str, Any]]) -> Result:
        if not params:
            return Result([], 0)
        compiled, values = self._compile(statement, params[0])
        cursor = self.driver.cursor()
        try:
            cursor.executemany(compiled.sql, [bind({**values, **p}, compiled.names) for p in params])
            return Result([], cursor.rowcount)
        finally:
            cursor.close()

    def _compile(
        self, statement: ClauseElement | Prepared, params: dict[str, Any] | None
    ) -> tuple[Compiled, dict[str, Any]]:
        """The SQL for a statement and the values it carries. Prepared statements compile once; others are looked
        up by SQLAlchemy's cache key (their structure), so each shape of statement compiles once too."""
        if isinstance(statement, Prepared):
            found = statement.compiled.get(self.dialect.name)
            if found is None:
                found = statement.compiled[self.dialect.name] = compile_statement(
                    statement.statement, self.dialect, None
                )
            return found, dict(found.defaults)
        column_keys = sorted(params) if params else None
        key = statement._generate_cache_key()  # the statement's shape and its literal values, as SQLAlchemy caches
        if key is None:
            found = compile_statement(statement, self.dialect, column_keys, render_postcompile=True)
            return found, dict(found.compiled.params)
        lookup = (key.key, tuple(column_keys) if column_keys else None)
        found = self.cache.get(lookup)
        if found is None:
            if len(self.cache) > 2000:
                self.cache.clear()
            found = compile_statement(statement, self.dialect, column_keys, cache_key=key)
            # IN lists render one placeholder per element, so their SQL depends on the values: never reuse it.
            self.cache[lookup] = found = found if "POSTCOMPILE" not in found.sql else PER_CALL
        if found is PER_CALL:
            found = compile_statement(statement, self.dialect, column_keys, render_postcompile=True)
            return found, dict(found.compiled.params)
        return found, dict(found.compiled.construct_params(params or None, extracted_parameters=key.bindparams))


class Store:
    """Owns the engine; everything the server knows is in the database behind it."""

    def __init__(self, url: str, journal: Callable[[], Any] | None = None) -> None:
        self.url = url
        self.journal = journal  # makes the journal of a write transaction, or None (see store/journal.py)
        self.kind = make_url(url).get_backend_name()
        self.engine = _engine(url, self.kind)
        self.dialect = self.engine.dialect
        self.integrity_error: type[Exception] = self.dialect.loaded_dbapi.IntegrityError
        self.compiled: dict[Any, Compiled] = {}  # statement shape → compiled SQL, shared by all transactions
        self.memo: dict[Any, Any] = {}
        self._local = threading.local()
        self._held: list[Any] = []
        self._wal_index: int | None = None  # SQLite: a descriptor of the -shm file (wal_index.py), -1 for none
        self._wal_index_lock = threading.Lock()

    def create(self) -> None:
        """Create missing tables and record the schema version, so a later version can migrate it.

        Another server process may be doing the same on the same database: on PostgreSQL the setup lock makes it
        wait, then find the tables made; on SQLite the write lock, taken at BEGIN (a deferred BEGIN would fail to
        upgrade its read to a write once the other process had written)."""
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if self.kind == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SETUP_LOCK)))
            schema.metadata.create_all(conn)
            found = conn.execute(
                select(schema.schema_info.c.value).where(schema.schema_info.c.key == "schema_version")
            ).scalar_one_or_none()
            if found is None:
                conn.execute(schema.schema_info.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
            elif int(found) > schema.SCHEMA_VERSION:
                raise RuntimeError(f"the database has schema version {found}, newer than this roleport knows")
            for name in ("iam", "journal"):  # the IAM change counter; the journal's lock row
                if conn.execute(select(schema.counters.c.value).where(schema.counters.c.name == name)).first() is None:
                    conn.execute(schema.counters.insert().values(name=name, value=0))

    def transaction(self, write: bool, journaled: bool = True, one_statement: bool = False) -> Transaction:
        """One transaction, as a context manager giving the Tx; `journaled=False` for writes that are not changes
        other services should see arrive late (the AWS managed policies seeded at start, a reset).

        `one_statement=True` promises a read that runs a single statement. SQLite then runs it on its own, without
        BEGIN and COMMIT: one statement is a transaction by itself, with the same isolation, and the two extra
        statements cost as much as a simple query. A second statement is refused (RuntimeError), so a broken
        promise fails loudly instead of reading from two snapshots."""
        return Transaction(self, write, journaled, one_statement and not write and self.kind == "sqlite")

    def change_marker(self) -> Hashable | None:
        """A value that changes whenever the database may have changed since it was last taken, for answers kept
        while nothing changed (read_cache.py); None where the store cannot tell cheaply (PostgreSQL).

        SQLite in WAL mode: the WAL-index header (wal_index.py), one pread; PRAGMA data_version would start and end
        a read transaction, six times the cost. Without one, data_version, which moves when other connections
        commit, with total_changes, which counts this thread's connection's own changes (rolled back ones too: a
        needless refresh, never a stale answer)."""
        if self.kind != "sqlite":
            return None
        header = self._wal_index if self._wal_index is not None else self._open_wal_index()
        if header >= 0:
            try:
                return wal_index.read(header)
            except OSError:
                return None  # disposed while this call ran: nothing is kept
        driver = self._thread_connection()
        return driver.total_changes, driver.execute("PRAGMA data_version").fetchone()[0]

    def _open_wal_index(self) -> int:
        with self._wal_index_lock:
            if self._wal_index is None:
                found = wal_index.acquire(self._thread_connection())  # a connection this thread keeps open
                self._wal_index = -1 if found is None else found
            return self._wal_index

    def _thread_connection(self) -> Any:
        """SQLite: each thread keeps one connection (a pool round trip costs more than a whole read here)."""
        driver = getattr(self._local, "driver", None)
        if driver is None:
            pooled = self.engine.raw_connection()
            self._held.append(pooled)
            driver = self._local.driver = pooled.driver_connection
        return driver

    def dispose(self) -> None:
        for pooled in self._held:
            pooled.close()
        self._held.clear()
        self.engine.dispose()
        if self._wal_index is not None and self._wal_index >= 0:
            wal_index.release(self._wal_index)  # only now, with this store's connections closed (wal_index.py)
        self._wal_index = None


def hold_setup_lock(tx: Tx) -> None:
    """Hold the setup lock (SETUP_LOCK) for the rest of a write transaction that seeds or resets the store. Nothing
    to do on SQLite, whose write transactions already hold its one write lock from BEGIN IMMEDIATE."""
    if tx.dialect.name == "postgresql":
        tx.execute(select(func.pg_advisory_xact_lock(SETUP_LOCK)))


class _OneStatementTx(Tx):
    """A read of one statement outside any explicit transaction (SQLite's autocommit runs it as its own)."""

    __slots__ = ("_spent",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._spent = False

    def execute(
        self, statement: ClauseElement | Prepared, params: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Result:
        if self._spent:
            raise RuntimeError("a transaction opened for one statement ran a second")
        self._spent = True
        return super().execute(statement, params)


class Transaction:
    """Store.transaction's context manager: commit when the block ends, roll back when it raises. A class rather than
    a @contextmanager generator, which costs several microseconds a call on the hot path."""

    __slots__ = ("alone", "journaled", "pooled", "store", "tx", "write")

    def __init__(self, store: Store, write: bool, journaled: bool, alone: bool = False) -> None:
        self.store = store
        self.write = write
        self.journaled = journaled
        self.alone = alone  # one SQLite read statement, run without BEGIN/COMMIT (see Store.transaction)
        self.pooled: Any = None
        self.tx: Tx | None = None

    def __enter__(self) -> Tx:
        store = self.store
        if self.alone:
            driver = store._thread_connection()
            self.tx = _OneStatementTx(driver, store.dialect, store.integrity_error, store.compiled, store.memo)
            return self.tx
        journal = store.journal() if self.write and self.journaled and store.journal is not None else None
        if store.kind == "sqlite":
            driver = store._thread_connection()
            # A writer takes SQLite's write lock when it begins, so two writers never deadlock on an upgrade.
            driver.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        else:
            self.pooled = store.engine.raw_connection()
            driver = self.pooled.driver_connection
        self.tx = Tx(driver, store.dialect, store.integrity_error, store.compiled, store.memo, journal, self.write)
        return self.tx

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        tx = self.tx
        driver = tx.driver  # type: ignore[union-attr]
        pooled = self.pooled
        if kind is None and tx.iam_changed:  # type: ignore[union-attr]
            try:
                tx.execute(generation.BUMP)  # type: ignore[union-attr]
            except BaseException as failure:
                self.__exit__(type(failure), failure, failure.__traceback__)  # roll back, as for a failing block
                raise
        if pooled is None:
            if kind is not None:
                driver.rollback()
            elif driver.in_transaction:
                # sqlite3's commit() prepares its COMMIT anew every time; execute() reuses the cached statement,
                # which halves what a transaction costs on top of its statements.
                driver.execute("COMMIT")
            return
        try:
            if kind is not None:
                driver.rollback()
            else:
                driver.commit()
        finally:
            pooled.close()


def _engine(url: str, kind: str) -> Engine:
    if kind != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(url, pool_size=5, max_overflow=-1)  # threads keep theirs; see _thread_connection

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Leave transactions to us (the driver's implicit BEGIN would defer the write lock); WAL lets readers run
        # beside a writer; busy_timeout makes concurrent writers from other threads or processes wait, not fail.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN")

    return engine
