"""The local SQLite store: invoice cache, sync ledger, runs, batches, QBO id cache and meta.

One file per profile, opened through `Store.open(path)`. The schema is a `sqlite_utils.Migrations`
set named "cwqbo": every migration is applied once and recorded, so an older file is upgraded in
place on open and a file written by a newer cwqbo is refused rather than damaged.
Money columns are TEXT holding exact Decimal strings; timestamps are ISO-8601 UTC TEXT.
The store never talks HTTP; callers keep transactions short (never across a network call).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cwqbo.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from sqlite_utils import Database, Migrations

BUSY_TIMEOUT_MS = 30_000
MIGRATION_SET = "cwqbo"
MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite_utils.Migrations.migrations_table (a test holds them equal)


def m001_initial(db: Database) -> None:
    """The schema agreed for 0.1: every table the cache, the sync engine and history use."""
    db.execute("""
        CREATE TABLE invoices (
            cw_id INTEGER PRIMARY KEY,
            number TEXT, type TEXT, status_name TEXT, closed INTEGER,
            company_id INTEGER, company_identifier TEXT, company_name TEXT,
            date TEXT, total TEXT, subtotal TEXT, sales_tax TEXT, line_count INTEGER,
            location_id INTEGER, department_id INTEGER, tax_code TEXT,
            in_scope INTEGER NOT NULL DEFAULT 1, unposted INTEGER NOT NULL DEFAULT 1,
            content_hash TEXT, last_updated TEXT, fetched_at TEXT, data TEXT
        )""")
    db.execute("CREATE INDEX idx_invoices_scope ON invoices (in_scope, unposted)")
    db.execute("CREATE INDEX idx_invoices_number ON invoices (number)")
    db.execute("""
        CREATE TABLE ledger (
            cw_id INTEGER PRIMARY KEY,
            invoice_number TEXT, entity TEXT, state TEXT NOT NULL,
            request_id TEXT, payload_hash TEXT, content_hash TEXT,
            cw_total TEXT, qbo_id TEXT, qbo_sync_token TEXT, qbo_total TEXT, intuit_tid TEXT,
            error TEXT, batch_identifier TEXT, run_id INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT, updated_at TEXT
        )""")
    db.execute("CREATE INDEX idx_ledger_state ON ledger (state)")
    db.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT, finished_at TEXT, trigger TEXT, user TEXT, host TEXT, pid INTEGER,
            dry_run INTEGER, status TEXT,
            selected INTEGER, created INTEGER, failed INTEGER, skipped INTEGER,
            batch_identifier TEXT, qbo_calls INTEGER, cw_calls INTEGER, duration_ms INTEGER,
            message TEXT
        )""")
    db.execute("""
        CREATE TABLE run_items (
            run_id INTEGER NOT NULL, cw_id INTEGER NOT NULL, invoice_number TEXT, outcome TEXT,
            entity TEXT, qbo_id TEXT, cw_total TEXT, qbo_total TEXT, intuit_tid TEXT, error TEXT,
            at TEXT,
            PRIMARY KEY (run_id, cw_id)
        )""")
    db.execute("""
        CREATE TABLE batches (
            identifier TEXT PRIMARY KEY, state TEXT, cw_batch_id INTEGER, invoice_ids TEXT,
            run_id INTEGER, created_at TEXT, error TEXT
        )""")
    db.execute("""
        CREATE TABLE qbo_refs (
            realm TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
            qbo_id TEXT, name TEXT, data TEXT, updated_at TEXT,
            PRIMARY KEY (realm, kind, key)
        )""")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")


def m002_lookup_indexes(db: Database) -> None:
    """History by invoice and the cache by company are looked up often; index them.

    Also `discover_seen`: the ids a full refresh has already stored, so an interrupted full refresh
    resumes without re-reading lines and only then retires invoices it did not see.
    """
    db.execute("CREATE INDEX IF NOT EXISTS idx_run_items_cw_id ON run_items (cw_id)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_invoices_company ON invoices (company_identifier)")
    db.execute("CREATE TABLE IF NOT EXISTS discover_seen (cw_id INTEGER PRIMARY KEY, last_updated TEXT)")


def m003_readiness_memo(db: Database) -> None:
    """`list-unsynced` shows whether each invoice is ready to map; remember the verdict per (invoice content,
    prefs) so listing thousands of cached invoices doesn't decode and map every one of them each time."""
    db.execute("CREATE TABLE IF NOT EXISTS readiness (cw_id INTEGER PRIMARY KEY, content_hash TEXT, "
               "prefs_hash TEXT, status TEXT, reason TEXT)")


def m004_ledger_doc_number(db: Database) -> None:
    """The DocNumber each intent was sent under: recovery probes that number, not today's, so a prefix
    change or a renumbered invoice between a crash and the next run can't create a second document."""
    if "doc_number" not in {c.name for c in db["ledger"].columns}:
        db.execute("ALTER TABLE ledger ADD COLUMN doc_number TEXT")


def m005_batch_gl_entries(db: Database) -> None:
    """A ConnectWise batch holds GL entries, not invoices: remember the GL entry ids the export gave for the
    batch's invoices *before* the batch POST, so a crash or a lost answer is settled by comparing them with what
    ConnectWise's batch holds, never by posting again."""
    if "gl_entry_ids" not in {c.name for c in db["batches"].columns}:
        db.execute("ALTER TABLE batches ADD COLUMN gl_entry_ids TEXT")


def m006_payments(db: Database) -> None:
    """Payments brought back from QuickBooks to ConnectWise (`state/payments.py`): one row per QBO payment line →
    CW invoice (and credit memo applied), recorded *before* the CW POST, since CW payments carry no idempotency key
    and no memo; `payment_events` is what each payment run did, for `history`. Amounts are TEXT (exact Decimal)."""
    db.execute("""
        CREATE TABLE IF NOT EXISTS payments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            qbo_payment_id TEXT NOT NULL, cw_invoice_id INTEGER NOT NULL, credit_cw_id INTEGER NOT NULL DEFAULT 0,
            qbo_entity TEXT, qbo_invoice_id TEXT, qbo_credit_id TEXT, invoice_number TEXT,
            state TEXT NOT NULL, amount TEXT NOT NULL, payment_date TEXT NOT NULL, type TEXT NOT NULL,
            qbo_updated TEXT, cw_payment_id INTEGER, error TEXT, run_id INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT, updated_at TEXT
        )""")
    db.execute("CREATE INDEX IF NOT EXISTS idx_payments_key ON payments (qbo_payment_id, cw_invoice_id)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_payments_state ON payments (state)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_payments_invoice ON payments (cw_invoice_id)")
    db.execute("""
        CREATE TABLE IF NOT EXISTS payment_events (
            run_id INTEGER NOT NULL, payment_row INTEGER, qbo_payment_id TEXT, cw_invoice_id INTEGER,
            invoice_number TEXT, outcome TEXT, amount TEXT, cw_payment_id INTEGER, error TEXT, at TEXT
        )""")
    db.execute("CREATE INDEX IF NOT EXISTS idx_payment_events_run ON payment_events (run_id)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_payment_events_invoice ON payment_events (cw_invoice_id)")


def m007_unsynced_index(db: Database) -> None:
    """`list-unsynced` (its count, total and items) and a run's selection read every unsynced invoice's summary
    columns: from an index holding them, in the listing's date order, those reads never touch the table's rows,
    each ~2 KB with its record, and are never sorted (`bench/list_unsynced.py`, `--json` at 100,000 cached: 0.856 s,
    was 1.104). It starts with the columns of `idx_invoices_scope`, which it replaces."""
    db.execute("CREATE INDEX IF NOT EXISTS idx_invoices_unsynced ON invoices (in_scope, unposted, closed, date, "
               "number, cw_id, total, subtotal, sales_tax, type, line_count, company_id, company_identifier, "
               "company_name, content_hash)")
    db.execute("DROP INDEX IF EXISTS idx_invoices_scope")


STEPS = (m001_initial, m002_lookup_indexes, m003_readiness_memo, m004_ledger_doc_number, m005_batch_gl_entries,
         m006_payments, m007_unsynced_index)
SCHEMA = tuple(step.__name__ for step in STEPS)  # what a current database has applied, in order
_migrations: list[Migrations] = []


def migrations() -> Migrations:
    """The schema as a `sqlite_utils.Migrations` set, built on first use: importing sqlite_utils costs a
    read-only command more start-up time than the rest of its work (`cli/fast_path.py` reads without it)."""
    if not _migrations:
        from sqlite_utils import Migrations

        made = Migrations(MIGRATION_SET)
        for step in STEPS:
            made()(step)
        _migrations.append(made)
    return _migrations[0]


class Queries(Protocol):
    """What reading needs of a database: `sqlite_utils.Database` has it, and so does `reader.Rows`."""

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor: ...


class Readable(Protocol):
    """A store that can be read: `Store`, or `reader.ReadStore` (the read-only commands' fast start)."""

    @property
    def db(self) -> Queries: ...


def utc_iso(ts: float | None = None) -> str:
    """Epoch seconds (e.g. `clock.now()`) → 'YYYY-MM-DDTHH:MM:SSZ', the store's timestamp format."""
    dt = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_locked(exc: BaseException) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


class Store:
    """An open cwqbo database. Use `Store.open(path)`; `.db` is the sqlite_utils.Database."""

    def __init__(self, db: Database, path: Path | None) -> None:
        self.db = db
        self.path = path

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, fresh: bool = False) -> Store:
        """Open (creating if needed) and migrate the store; every failure is a one-line StoreError.

        An existing file of zero bytes is refused: it is what is left when a database was truncated (a full disk,
        a bad copy or restore), and opening it as new would silently forget the ledger and the history. `fresh`
        (`--fresh-database`) accepts it and starts a new database in it.
        """
        p = Path(path)
        if is_empty_file(p) and not fresh:
            raise empty_database_error(p)
        try:
            _prepare_file(p)
        except PermissionError as exc:
            raise StoreError(f"cannot create the database {p}: permission denied",
                             hint="check the directory's permissions or set CWQBO_HOME") from exc
        except OSError as exc:
            raise StoreError(f"cannot create the database {p}: {exc.strerror or exc}",
                             hint="check the path or set CWQBO_HOME") from exc
        try:
            conn = sqlite3.connect(str(p), timeout=busy_timeout_ms / 1000, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {p}: {exc}",
                             hint="check the directory's permissions or set CWQBO_HOME") from exc
        from sqlite_utils import Database

        store = cls(Database(conn, execute_plugins=False), p)
        try:
            store._setup(busy_timeout_ms)
        except StoreError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _translate(exc, p) from exc
        _tighten_sidecars(p)
        return store

    @classmethod
    def memory(cls) -> Store:
        """An in-memory store with the full schema (tests, dry runs)."""
        from sqlite_utils import Database

        store = cls(Database(memory=True, execute_plugins=False), None)
        store.db.execute("PRAGMA foreign_keys = ON")
        migrations().apply(store.db)
        return store

    def _setup(self, busy_timeout_ms: int) -> None:
        db, p = self.db, self.path
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Reading the schema is the first thing that touches the file's content: a corrupt file
        # or a non-SQLite file fails here, before anything is written.
        tables = set(db.table_names())
        applied = {m.name for m in migrations().applied(db)}
        known = set(SCHEMA)
        foreign = tables - {MIGRATIONS_TABLE, "sqlite_sequence"}
        if foreign and not applied:
            raise StoreError(
                f"{p} is not a cwqbo database (it holds other tables: {', '.join(sorted(foreign)[:3])})"
                " — move it aside; nothing was changed",
                hint="cwqbo creates a fresh database at that path when the file is absent")
        if applied - known:
            raise StoreError(
                f"{p} was written by a newer cwqbo (schema {', '.join(sorted(applied - known))})"
                " — upgrade cwqbo; nothing was changed")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")
        migrations().apply(db)

    # -- use -----------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One atomic block (nested blocks become savepoints); rolls back on any exception."""
        try:
            with self.db.atomic() as db:
                yield db
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise _locked_error(self.path) from exc
            raise

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, delete) a meta value."""
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", [key])
        else:
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])

    def schema_version(self) -> list[str]:
        """Names of the applied migrations, oldest first (shown by `doctor`-style commands)."""
        return [m.name for m in migrations().applied(self.db)]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


FRESH_DATABASE_ENV = "CWQBO_FRESH_DATABASE"


def is_empty_file(p: Path) -> bool:
    """True for an existing database file of 0 bytes with no write-ahead log holding its content."""
    try:
        if p.stat().st_size != 0:
            return False
    except OSError:
        return False
    try:
        return p.with_name(p.name + "-wal").stat().st_size == 0
    except OSError:
        return True


def empty_database_error(p: Path) -> StoreError:
    return StoreError(
        f"the database {p} is empty (0 bytes): its sync history and ledger are gone; nothing was changed",
        hint="restore it from a backup; or, to start over (cwqbo will then rely on the DocNumber check in "
             f"QuickBooks to avoid duplicates), re-run with --fresh-database or {FRESH_DATABASE_ENV}=1")


def _prepare_file(p: Path) -> None:
    """Parent dir 0700 when we create it; the file itself 0600 before SQLite ever writes to it."""
    if not p.parent.exists():
        p.parent.mkdir(mode=0o700, parents=True)
    if not p.exists():
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    elif not os.access(p, os.R_OK):
        raise PermissionError(f"cannot read {p}")


def _tighten_sidecars(p: Path) -> None:
    for suffix in ("-wal", "-shm"):
        side = p.with_name(p.name + suffix)
        try:
            if side.exists():
                os.chmod(side, 0o600)
        except OSError:
            pass


def _locked_error(p: Path | None) -> StoreError:
    return StoreError(f"the database {p} is locked by another process",
                      hint="wait for the other cwqbo run to finish, then try again")


def _translate(exc: sqlite3.DatabaseError, p: Path) -> StoreError:
    msg = str(exc)
    low = msg.lower()
    if _is_locked(exc):
        return _locked_error(p)
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return StoreError(f"cannot write the database {p} ({msg})",
                          hint="check the file and directory permissions or set CWQBO_HOME")
    if "not a database" in low or "malformed" in low or "encrypted" in low:
        return StoreError(f"{p} is not a cwqbo database ({msg}) — move it aside; nothing was changed",
                          hint="cwqbo creates a fresh database at that path when the file is absent")
    return StoreError(f"database error in {p}: {msg}")
