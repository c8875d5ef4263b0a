"""Where cwqbo keeps its files. Apart from config.py so that read-only commands can find the database without
importing the config schema (start-up time: `cli/fast_path.py`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP = "cwqbo"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Paths:
    """Every file cwqbo touches; `CWQBO_HOME` puts them all in one directory (tests, cron)."""

    config_dir: Path
    data_dir: Path
    config_override: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, config_file: Path | None = None) -> "Paths":
        env = dict(os.environ) if env is None else env
        home = env.get("CWQBO_HOME")
        if home:
            root = Path(home)
            return cls(root, root, config_file)
        import platformdirs  # only when no override: keeps tests independent of the real home

        return cls(platformdirs.user_config_path(APP), platformdirs.user_data_path(APP), config_file)

    @property
    def config_file(self) -> Path:
        return self.config_override or self.config_dir / "config.toml"

    def db_file(self, profile: str) -> Path:
        return self.data_dir / f"cwqbo-{profile}.db"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def lock_dir(self) -> Path:
        return self.data_dir / "locks"

    def sync_lock_file(self, profile: str) -> Path:
        """Held by a sync (and by anything that rewrites the invoice cache): one at a time per profile."""
        return self.lock_dir / f"{profile}.sync.lock"

    def oauth_lock_file(self, profile: str) -> Path:
        """Held while a QuickBooks refresh token is rotated, so two processes never spend the same one."""
        return self.lock_dir / f"{profile}.oauth.lock"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
