"""`cwqbo demo` — the README's first command — works on a fresh install with no accounts or network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_the_whole_journey(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWQBO_")}
    scratch = home / "tmp"
    scratch.mkdir()
    env.update({"CWQBO_HOME": str(home), "COLUMNS": "200", "TMPDIR": str(scratch)})  # the demo home lands here
    r = subprocess.run([sys.executable, "-m", "cwqbo", "demo", "--invoices", "25", "--seed", "2"],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    batch = re.search(r"ConnectWise batch (cwqbo-\d{4}-\d{2}-\d{2}-\d{3}) holds exactly the (\d+) invoices", out)
    assert batch, out
    created = re.search(r"(\d+) sent, (\d+) failed", out)
    assert created and created.group(1) == batch.group(2) and int(created.group(1)) > 0
    for step in ("list-unsynced", "sync --all", "history", "Try next"):
        assert step in out
    assert "Traceback" not in r.stderr
    assert list(scratch.iterdir()) == [], "without --keep the demo removes its temporary home"
