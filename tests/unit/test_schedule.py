"""Cron validation, next runs, and an idempotent crontab entry that leaves the user's other jobs alone."""

from __future__ import annotations

import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cwqbo.errors import ConfigError
from cwqbo.settings.schedule import (
    CrontabError, JobTarget, crontab_line, install_crontab, merge_crontab, next_runs, on_calendar, read_crontab,
    remove_from_crontab, systemd_units, uninstall_crontab, validate_cron,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("expr", ["0 6 * * *", "*/15 8-18 * * 1-5", "@daily", "  0  6 * * *  "])
def test_valid_cron(expr: str) -> None:
    assert validate_cron(expr) == " ".join(expr.split())


@pytest.mark.parametrize("expr", ["", "every day", "61 * * * *", "0 6 * *", "0 0 6 * * *", "@reboot"])
def test_invalid_cron(expr: str) -> None:
    with pytest.raises(ConfigError, match="not a valid cron expression"):
        validate_cron(expr)


def test_next_runs() -> None:
    assert next_runs("0 6 * * *", 3, NOW) == [datetime(2026, 11, 27, 6, tzinfo=timezone.utc),
                                             datetime(2026, 11, 28, 6, tzinfo=timezone.utc),
                                             datetime(2026, 11, 29, 6, tzinfo=timezone.utc)]
    assert next_runs("@hourly", 1, NOW) == [datetime(2026, 11, 26, 13, tzinfo=timezone.utc)]


def target(profile: str = "default") -> JobTarget:
    return JobTarget(profile, Path("/etc/cwqbo/config.toml"))


def test_crontab_line_runs_a_scheduled_sync_for_the_profile() -> None:
    t = JobTarget.current("acme%1", Path("/srv/my conf/cwqbo.toml"), {"CWQBO_HOME": "/srv/cw qbo"})
    line = crontab_line("0 6 * * *", "/opt/my tools/cwqbo", t)
    assert line == ("0 6 * * * CWQBO_SCHEDULED=1 CWQBO_HOME='/srv/cw qbo' '/opt/my tools/cwqbo' "
                    "--config '/srv/my conf/cwqbo.toml' --profile acme\\%1 sync --all")


def test_job_target_is_absolute_and_keeps_a_custom_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    t = JobTarget.current("a", Path("conf.toml"), {"XDG_DATA_HOME": "data"})
    assert t.config_file == tmp_path / "conf.toml" and t.home is None and t.xdg_data_home == tmp_path / "data"
    assert ("XDG_DATA_HOME", str(tmp_path / "data")) in t.environment()
    assert JobTarget.current("a", Path("c"), {"CWQBO_HOME": "h", "XDG_DATA_HOME": "d"}).xdg_data_home is None


def test_merge_is_idempotent_and_keeps_other_jobs() -> None:
    existing = "MAILTO=me\n5 4 * * * backup.sh\n"
    once = merge_crontab(existing, crontab_line("0 6 * * *", "cwqbo", target("a")), "a")
    assert once.startswith(existing) and once.count("sync --all") == 1
    assert merge_crontab(once, crontab_line("0 6 * * *", "cwqbo", target("a")), "a") == once
    changed = merge_crontab(once, crontab_line("0 7 * * *", "cwqbo", target("a")), "a")
    assert "0 7 * * *" in changed and "0 6 * * *" not in changed
    both = merge_crontab(changed, crontab_line("0 8 * * *", "cwqbo", target("b")), "b")
    assert remove_from_crontab(remove_from_crontab(both, "a"), "b") == existing
    assert "--profile b" in remove_from_crontab(both, "a")


@pytest.fixture
def fake_crontab(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in `crontab` command storing its table in a file (no real crontab touched)."""
    table = tmp_path / "table"
    script = tmp_path / "crontab"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        f"p = pathlib.Path({str(table)!r})\n"
        "if sys.argv[1] == '-l':\n"
        "    if not p.exists():\n"
        "        sys.stderr.write('no crontab for tester\\n'); sys.exit(1)\n"
        "    sys.stdout.write(p.read_text())\n"
        "else:\n"
        "    p.write_text(sys.stdin.read())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), table


def test_install_and_uninstall_through_the_crontab_command(fake_crontab: tuple[str, Path]) -> None:
    cmd, table = fake_crontab
    assert read_crontab(cmd) == ""
    line = crontab_line("0 6 * * *", "cwqbo", target())
    assert install_crontab(line, "default", crontab=cmd).changed
    assert line in table.read_text()
    assert not install_crontab(line, "default", crontab=cmd).changed
    assert uninstall_crontab("default", crontab=cmd).changed
    assert "sync --all" not in table.read_text()
    assert not uninstall_crontab("default", crontab=cmd).changed


def test_missing_crontab_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CrontabError, match="command not found"):
        read_crontab(str(tmp_path / "no-such-crontab"))


def test_systemd_units() -> None:
    assert on_calendar("0 6 * * *") == "*-*-* 06:00:00"
    assert on_calendar("*/15 8-18 * * 1-5") == "Mon..Fri *-*-* 08..18:0/15:00"
    assert on_calendar("@weekly") == "weekly"
    units = systemd_units("30 2 1 * *", "/usr/bin/cwqbo",
                          JobTarget("acme", Path("/my conf/c.toml"), home=Path("/srv/cwqbo 100%")))
    assert units["cwqbo-sync-acme.timer"].count("OnCalendar=*-*-01 02:30:00") == 1
    svc = units["cwqbo-sync-acme.service"]
    assert "Environment=CWQBO_SCHEDULED=1" in svc and 'Environment="CWQBO_HOME=/srv/cwqbo 100%%"' in svc
    assert 'ExecStart=/usr/bin/cwqbo --config "/my conf/c.toml" --profile acme sync --all' in svc
    with pytest.raises(ConfigError, match="systemd needs both"):
        on_calendar("0 6 1 * 1")
