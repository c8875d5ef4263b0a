"""Issue 11: the job `prefs schedule` installs runs in cron's environment (no CWQBO_HOME, no PATH of ours, another
working directory) and must still reach exactly the home, config file and profile the user set up."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import app
from tests.cli.test_cli_prefs import fake_crontab  # noqa: F401 - fixture

CONFIG = 'default_profile = "other"\n[profiles.other]\n[profiles.acme]\nsecret_store = "file"\n'


def cron_command(table: str) -> str:
    """The command part of our entry, as cron hands it to /bin/sh (cron turns `\\%` into `%`)."""
    lines = table.splitlines()
    entry = lines[next(i for i, ln in enumerate(lines) if ln.startswith("# cwqbo:acme ")) + 1]
    return entry.split(" ", 5)[5].replace("\\%", "%")


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs /bin/sh")
def test_installed_job_reaches_the_same_home_config_and_profile(tmp_path: Path, runner: CliRunner,
                                                                fake_crontab: Path,  # noqa: F811
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "my home %1"  # a space and a % must survive cron and the shell
    home.mkdir()
    config = tmp_path / "conf dir" / "cwqbo.toml"
    config.parent.mkdir()
    config.write_text(CONFIG)
    monkeypatch.setenv("CWQBO_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["--config", "conf dir/cwqbo.toml", "--profile", "acme", "prefs", "schedule",
                                 "0 6 * * *", "--install"])
    assert result.exit_code == 0, result.output
    command = cron_command(fake_crontab.read_text())
    assert str(config) in command and "--profile acme" in command

    elsewhere = tmp_path / "cron cwd"
    elsewhere.mkdir()
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "cron home"), "SHELL": "/bin/sh",
            "COLUMNS": "80"}  # what cron gives a job
    job = subprocess.run(["sh", "-c", command], cwd=elsewhere, env=bare, capture_output=True, text=True,
                         timeout=60, check=False)
    # The job found profile acme (only in that config file), in automatic mode, and stopped because it is not
    # connected: a job reading another config would say "no profile named 'acme'" (exit 2) or do nothing (exit 0).
    assert job.returncode == 3, (job.returncode, job.stdout, job.stderr)
    assert "ConnectWise is not connected for profile 'acme'" in job.stderr
    assert not (tmp_path / "cron home").exists() and list(elsewhere.iterdir()) == []


def test_setting_a_schedule_in_manual_mode_says_the_job_will_do_nothing(home: Path, runner: CliRunner,
                                                                        fake_crontab: Path) -> None:  # noqa: F811
    result = runner.invoke(app, ["prefs", "schedule", "0 7 * * *"])
    assert result.exit_code == 0
    assert "sync_mode is manual" in result.stderr and "--automatic" in result.stderr
    printed = runner.invoke(app, ["prefs", "schedule", "--print"])
    assert "sync_mode is manual" in printed.stderr and "sync --all" in printed.stdout
    doc = json.loads(runner.invoke(app, ["prefs", "schedule", "--print", "--json"]).stdout)
    assert doc["data"]["sync_mode"] == "manual" and "sync_mode is manual" in doc["errors"][0]["message"]
    result = runner.invoke(app, ["prefs", "schedule", "0 7 * * *", "--automatic"])
    assert result.exit_code == 0 and "sync_mode is manual" not in result.stderr
    assert "sync mode: automatic" in result.stdout
    assert not fake_crontab.exists()  # --automatic alone installs nothing


def test_print_line_carries_the_home_and_config(home: Path, runner: CliRunner) -> None:
    printed = runner.invoke(app, ["prefs", "schedule", "--print"]).stdout
    assert f"CWQBO_HOME={home}" in printed and f"--config {home / 'config.toml'}" in printed
    units = runner.invoke(app, ["prefs", "schedule", "--print", "--systemd"]).stdout
    assert f"Environment=CWQBO_HOME={home}" in units and f"--config {home / 'config.toml'}" in units
