"""`cwqbo.files.atomic_write`: the old file survives a crash before the rename, and the rename is made durable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cwqbo import files


class Crash(BaseException):
    """Stands in for SIGKILL / power loss between writing the temp file and renaming it."""


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Inodes of everything fsynced, in order (fds are reused, inodes are not)."""
    seen: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_writes_private_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    files.atomic_write(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_mode_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    files.atomic_write(target, b"x", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_crash_before_replace_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    files.atomic_write(target, b"old")

    def crash(*args: object) -> None:
        raise Crash()

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Crash):
        files.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.skipif(os.name != "posix", reason="directories are fsynced on POSIX only")
def test_file_then_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    seen = record_fsyncs(monkeypatch)
    files.atomic_write(target, b"data")
    assert seen[-1] == tmp_path.stat().st_ino  # the rename is durable, after the data
    assert target.stat().st_ino in seen[:-1]  # the data itself was flushed to disk before the rename


@pytest.mark.skipif(os.name != "posix", reason="directories are fsynced on POSIX only")
def test_directory_fsync_unsupported_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not supported")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files.atomic_write(tmp_path / "f.txt", b"data")
    assert (tmp_path / "f.txt").read_bytes() == b"data"
