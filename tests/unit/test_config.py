from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cwqbo.settings.config import (CWSettings, Config, Paths, Profile, QBOSettings, load_config, save_config)
from cwqbo.errors import ConfigError

GOOD = """\
default_profile = "acme"

[profiles.acme]
secret_store = "file"

[profiles.acme.connectwise]
site = "na.myconnectwise.net"
company_id = "acme"
public_key = "pub"
client_id = "00000000-0000-4000-8000-00000000c1d0"

[profiles.acme.quickbooks]
environment = "sandbox"
client_id = "abc"
realm_id = "123"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_paths_follow_cwqbo_home(tmp_path: Path) -> None:
    paths = Paths.from_env({"CWQBO_HOME": str(tmp_path)})
    assert paths.config_file == tmp_path / "config.toml"
    assert paths.db_file("acme") == tmp_path / "cwqbo-acme.db"
    assert paths.secrets_file.parent == tmp_path
    assert paths.lock_dir.is_relative_to(tmp_path) and paths.log_dir.is_relative_to(tmp_path)
    assert Paths.from_env({"CWQBO_HOME": str(tmp_path)}, tmp_path / "x.toml").config_file == tmp_path / "x.toml"


def test_missing_file_is_an_empty_config_with_a_default_profile(tmp_path: Path) -> None:
    config = load_config(tmp_path / "nope.toml")
    assert config.profile().name == "default"
    assert config.profile().quickbooks.redirect_uri == "http://127.0.0.1:8725/callback"


def test_loads_profiles(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    profile = config.profile()
    assert profile.name == "acme" and profile.secret_store == "file"
    assert profile.connectwise.site == "na.myconnectwise.net"
    assert profile.quickbooks.environment == "sandbox" and profile.quickbooks.realm_id == "123"


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('public_key = "pub"', 'public_key = "pub"\npublik_key = "oops"'))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert message.startswith(f"{path}:10: profiles.acme.connectwise.publik_key: unknown key")
    assert "\n" not in message


def test_bad_value_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('environment = "sandbox"', 'environment = "staging"'))
    with pytest.raises(ConfigError, match=r"config.toml:13: profiles.acme.quickbooks.environment: must be one of"):
        load_config(path)


def test_bad_secret_store_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":4: profiles.acme.secret_store"):
        load_config(write(tmp_path, GOOD.replace('"file"', '"vault"')))


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.toml:3: TOML syntax error"):
        load_config(write(tmp_path, 'default_profile = "a"\n\n[profiles.a\n'))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":1: token: unknown key"):
        load_config(write(tmp_path, 'token = "x"\n'))


def test_unknown_prefs_key_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.toml:\d+: .*bogus"):
        load_config(write(tmp_path, GOOD + '\n[profiles.acme.prefs]\nbogus = 1\n'))


def test_simulator_needs_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="simulator_url"):
        load_config(write(tmp_path, GOOD.replace('"sandbox"', '"simulator"')))


def test_save_round_trips_atomically_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    profile = Profile(name="acme", connectwise=CWSettings(site="s", company_id="c", public_key="p", client_id="i"),
                      quickbooks=QBOSettings(environment="simulator", simulator_url="http://127.0.0.1:9",
                                             realm_id="1"), secret_store="file")
    save_config(Config(profiles={"acme": profile}, default_profile="acme"), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left behind
    again = load_config(path)
    assert again.profile().connectwise == profile.connectwise
    assert again.profile().quickbooks == profile.quickbooks
    assert again.profile().prefs == profile.prefs and again.profile().filters == profile.filters


def test_save_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)

    def boom(*a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_config(Config(), path)
    assert path.read_text() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_unknown_profile_is_a_config_error() -> None:
    config = Config(profiles={"a": Profile(name="a")}, default_profile="a")
    with pytest.raises(ConfigError, match="no profile named 'b'"):
        config.profile("b")


def test_example_config_is_valid_and_documents_every_key() -> None:
    import dataclasses

    from cwqbo.settings.prefs import Filters, Prefs

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    config = load_config(example)
    assert set(config.profiles) == {"default", "sandbox"}
    assert config.profiles["sandbox"].quickbooks.environment == "simulator"
    text = example.read_text()
    for cls in (CWSettings, QBOSettings, Filters):
        for f in dataclasses.fields(cls):
            assert f"\n{f.name} =" in text, f.name

    def names(cls: type) -> set[str]:
        out = set()
        for f in dataclasses.fields(cls):
            out.add(f.name)
            if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
                out |= names(f.default_factory)  # type: ignore[arg-type]
        return out

    for name in names(Prefs) - {"fields", "items", "tax", "time"}:
        assert f"\n{name} =" in text or f".{name}]" in text, name


def test_sync_lock_is_exclusive_per_profile(tmp_path: Path) -> None:
    from cwqbo.context import AppContext
    from cwqbo.errors import LockedError

    paths = Paths(tmp_path, tmp_path)
    first = AppContext(paths, Config(), "acme")
    second = AppContext(paths, Config(), "acme")
    other = AppContext(paths, Config(), "beta")
    with first.sync_lock():
        with pytest.raises(LockedError, match=rf"another cwqbo sync is running for profile acme \(pid {os.getpid()}\)"):
            with second.sync_lock():
                pass
        with other.sync_lock():  # a different profile is independent
            pass
    with second.sync_lock():  # released on exit
        pass


def test_bad_pref_value_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'default_profile = "a"\n[profiles.a.prefs.tax]\nmode = "pin_cw"\non_mismatch = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"config.toml:4: profiles.a.prefs.tax.on_mismatch: must be one of"):
        load_config(path)


def test_connectwise_api_version_defaults_and_is_validated(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).profile().connectwise.api_version == "2025.1"
    custom = GOOD.replace('public_key = "pub"', 'public_key = "pub"\napi_version = "2026.2"')
    assert load_config(write(tmp_path, custom)).profile().connectwise.api_version == "2026.2"
    bad = GOOD.replace('public_key = "pub"', 'public_key = "pub"\napi_version = "v2025_1"')
    with pytest.raises(ConfigError, match=r"config.toml:10: profiles.acme.connectwise.api_version: must look like YYYY.N"):
        load_config(write(tmp_path, bad))
    path = tmp_path / "saved.toml"
    save_config(Config(profiles={"a": Profile(name="a", connectwise=CWSettings(api_version="2026.2"))},
                       default_profile="a"), path)
    assert load_config(path).profile().connectwise.api_version == "2026.2"


@pytest.mark.skipif(os.name != "posix", reason="directories are fsynced on POSIX only")
def test_save_fsyncs_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_files import record_fsyncs

    seen = record_fsyncs(monkeypatch)
    save_config(Config(), tmp_path / "config.toml")
    assert seen and seen[-1] == tmp_path.stat().st_ino
