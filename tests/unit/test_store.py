"""The store: schema, in-place upgrades, permissions, and clear errors on a bad file."""

from __future__ import annotations

import os
import sqlite3
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from sqlite_utils import Database

from cwqbo.errors import StoreError
from cwqbo.state.store import SCHEMA, Store, migrations, utc_iso

TABLES = {"invoices", "ledger", "runs", "run_items", "batches", "qbo_refs", "meta"}


def test_open_creates_full_schema_private_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "home" / "cwqbo-default.db"
    store = Store.open(path)
    assert TABLES <= set(store.db.table_names())
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    cols = {c.name: c.type for c in store.db["ledger"].columns}
    assert cols["cw_total"] == "TEXT" and cols["state"] == "TEXT"
    assert store.db["run_items"].pks == ["run_id", "cw_id"]
    assert store.db["qbo_refs"].pks == ["realm", "kind", "key"]
    store.close()


def test_money_text_round_trips_exactly(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.db["ledger"].insert({"cw_id": 1, "state": "created", "cw_total": str(Decimal("0.10") + Decimal("0.20"))})
    store.close()
    again = Store.open(tmp_path / "s.db")
    assert again.db.execute("SELECT cw_total FROM ledger").fetchone()[0] == "0.30"


def test_meta_set_get_delete_persist(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    assert store.get_meta("cache.watermark") is None
    assert store.get_meta("x", "dflt") == "dflt"
    store.set_meta("cache.watermark", "2026-01-01T00:00:00Z")
    store.set_meta("cache.watermark", "2026-02-01T00:00:00Z")
    store.close()
    store = Store.open(tmp_path / "s.db")
    assert store.get_meta("cache.watermark") == "2026-02-01T00:00:00Z"
    store.set_meta("cache.watermark", None)
    assert store.get_meta("cache.watermark") is None


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set_meta("a", "1")
            raise RuntimeError("boom")
    assert store.get_meta("a") is None
    with store.transaction():
        store.set_meta("a", "2")
    assert store.get_meta("a") == "2"


def test_reopen_is_idempotent(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.db").close()
    store = Store.open(tmp_path / "s.db")
    assert store.schema_version() == [m.name for m in migrations()._migrations] == list(SCHEMA)


def test_the_read_only_opener_reads_what_sqlite_utils_records(tmp_path: Path) -> None:
    """`reader.open_read` checks the schema without sqlite_utils: the table and set names it reads are the ones
    sqlite_utils writes, so a current database is read and nothing else is."""
    from sqlite_utils import Migrations

    from cwqbo.state.reader import open_read
    from cwqbo.state.store import MIGRATION_SET, MIGRATIONS_TABLE

    assert (MIGRATIONS_TABLE, MIGRATION_SET) == (Migrations.migrations_table, migrations().name)
    Store.open(tmp_path / "s.db").close()
    reader = open_read(tmp_path / "s.db")
    assert reader is not None
    assert reader.db.execute("select count(*) from runs").fetchone() == (0,)
    reader.close()


def test_v1_file_is_upgraded_in_place_keeping_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    migrations().apply(db, stop_before="m002_lookup_indexes")
    db["ledger"].insert({"cw_id": 7, "state": "created", "qbo_id": "145", "cw_total": "12.34"})
    db.close()

    store = Store.open(path)
    assert "m002_lookup_indexes" in store.schema_version()
    index_names = {i.name for i in store.db["run_items"].indexes}
    assert "idx_run_items_cw_id" in index_names
    assert store.db.execute("SELECT qbo_id, cw_total FROM ledger WHERE cw_id=7").fetchone() == ("145", "12.34")


def test_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cwqbo-default.db"
    junk = b"this is not sqlite at all" * 200
    path.write_bytes(junk)
    with pytest.raises(StoreError) as err:
        Store.open(path)
    msg = str(err.value)
    assert "cwqbo-default.db is not a cwqbo database" in msg
    assert "move it aside; nothing was changed" in msg
    assert "\n" not in msg
    assert err.value.exit_code == 5
    assert path.read_bytes() == junk
    assert not (tmp_path / "cwqbo-default.db-wal").exists()


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cwqbo-default.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a cwqbo database"):
        Store.open(path)
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["photos"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.open(path)
    store.db["_sqlite_migrations"].insert({"migration_set": "cwqbo", "name": "m999_future", "applied_at": "x"})
    store.close()
    with pytest.raises(StoreError, match="newer cwqbo"):
        Store.open(path)


def test_locked_database_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = None
        with pytest.raises(StoreError) as err:
            store = Store.open(path, busy_timeout_ms=50)
            with store.transaction():
                store.set_meta("k", "v")
        assert "locked" in str(err.value)
        assert err.value.hint
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_gives_store_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="cannot create the database"):
            Store.open(ro / "cwqbo-default.db")
    finally:
        ro.chmod(0o700)


def test_unwritable_parent_path_gives_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the database"):
        Store.open(blocker / "sub" / "cwqbo-default.db")


def test_utc_iso_format() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_iso(1_780_000_000).endswith("Z")
