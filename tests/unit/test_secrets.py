from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail, null

from cwqbo.settings.config import Paths
from cwqbo.errors import NotConnectedError, SecretStoreError
from cwqbo.settings.tokens import TokenSet
from cwqbo.settings.secrets import FileStore, KeyringStore, load_tokens, open_secret_store, save_tokens

TOKENS = TokenSet("access-SECRET", "refresh-SECRET", 1000.0, 2000.0, 3000.0, "9341")


def test_file_store_is_0600_and_round_trips(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "secrets.json")
    store.set("p/cw_private_key", "hunter2")
    store.set("p/qbo_client_secret", "s3cret")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get("p/cw_private_key") == "hunter2"
    store.delete("p/cw_private_key")
    assert store.get("p/cw_private_key") is None and store.get("p/qbo_client_secret") == "s3cret"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]


def test_file_store_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "secrets.json")
    store.set("a", "old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.set("a", "new")
    monkeypatch.undo()
    assert store.get("a") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]


def test_file_store_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        FileStore(tmp_path / "secrets.json").set("a", "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.json").st_mode) == 0o600


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text("{not json")
    os.chmod(tmp_path / "secrets.json", 0o600)
    with pytest.raises(SecretStoreError, match="not valid JSON"):
        FileStore(tmp_path / "secrets.json").get("a")


@pytest.mark.parametrize("backend", [null.Keyring, fail.Keyring])
def test_unusable_keyring_is_refused(tmp_path: Path, backend: type) -> None:
    keyring.set_keyring(backend())
    with pytest.raises(SecretStoreError) as exc:
        open_secret_store("keyring", Paths(tmp_path, tmp_path))
    assert "--secret-store file" in (exc.value.hint or "")
    assert exc.value.exit_code == 3


def test_chainer_without_backends_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer

    monkeypatch.setattr(chainer.ChainerBackend, "backends", property(lambda self: []))
    keyring.set_keyring(chainer.ChainerBackend())
    with pytest.raises(SecretStoreError, match="no usable OS keyring"):
        open_secret_store("keyring", Paths(tmp_path, tmp_path))


def test_working_keyring_is_used(tmp_path: Path) -> None:
    store = open_secret_store("keyring", Paths(tmp_path, tmp_path))
    assert isinstance(store, KeyringStore)
    store.set("p/qbo_client_secret", "x")
    assert keyring.get_password("cwqbo", "p/qbo_client_secret") == "x"
    store.delete("p/qbo_client_secret")
    store.delete("p/qbo_client_secret")  # deleting twice is fine
    assert store.get("p/qbo_client_secret") is None


def test_tokens_round_trip_and_never_show_in_repr(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "secrets.json")
    save_tokens(store, "acme", TOKENS)
    assert load_tokens(store, "acme") == TOKENS
    assert "SECRET" not in repr(load_tokens(store, "acme")) and "SECRET" not in repr(store)
    assert json.loads((tmp_path / "secrets.json").read_text())["acme/qbo_tokens"]


def test_missing_tokens_means_not_connected(tmp_path: Path) -> None:
    with pytest.raises(NotConnectedError, match="connect quickbooks|not connected"):
        load_tokens(FileStore(tmp_path / "secrets.json"), "acme")


def test_non_utf8_file_is_a_secret_store_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    os.chmod(path, 0o600)
    with pytest.raises(SecretStoreError, match=r"secrets.json is not UTF-8") as exc:
        FileStore(path).get("a")
    assert exc.value.exit_code == 3 and exc.value.hint and "connect" in exc.value.hint


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_file_readable_by_others_is_refused_with_the_chmod_fix(tmp_path: Path, mode: int) -> None:
    store = FileStore(tmp_path / "secrets.json")
    store.set("a", "b")
    os.chmod(store.path, mode)
    with pytest.raises(SecretStoreError, match=rf"readable by other users \(mode 0{mode:o}\)") as exc:
        store.get("a")
    assert exc.value.hint and f"chmod 600 {store.path}" in exc.value.hint
    with pytest.raises(SecretStoreError):
        store.set("a", "c")  # nor is it silently rewritten
    assert stat.S_IMODE(os.stat(store.path).st_mode) == mode
    os.chmod(store.path, 0o600)
    assert store.get("a") == "b"


@pytest.mark.skipif(os.name != "posix", reason="directories are fsynced on POSIX only")
def test_file_store_fsyncs_the_directory_so_a_rotated_token_survives_a_power_cut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "secrets.json")
    store.set("a", "old")
    from tests.unit.test_files import record_fsyncs

    seen = record_fsyncs(monkeypatch)
    store.set("a", "rotated")
    assert seen and seen[-1] == tmp_path.stat().st_ino
