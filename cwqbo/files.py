"""One way to replace a file on disk so that a crash leaves either the old file or the new one, never half.

config.toml and the secrets file both go through `atomic_write`. The directory is fsynced after the rename:
without it a power cut can undo the rename, and a rotated QuickBooks refresh token (the old one is already
dead) would be lost even though `save_tokens` had returned.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600

# Filesystems that cannot fsync a directory say so with one of these; the rename itself still happened.
_DIR_FSYNC_UNSUPPORTED = (errno.EINVAL, errno.ENOTSUP, errno.EBADF)


def atomic_write(path: Path, data: bytes, *, mode: int = PRIVATE, prefix: str = ".tmp-") -> None:
    """Write `data` to `path` atomically and durably, with permissions `mode` (private by default).

    The temp file lives in the same directory (so `os.replace` is a rename, not a copy) and is created 0600,
    so a secret is never readable by others, not even briefly. On any failure the temp file is removed and
    the old file is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # before any byte is written: a umask never widens a secret file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX only: Windows has no directory handles to fsync)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)
