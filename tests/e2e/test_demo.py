"""`cwqbo demo` — the README's first command — works on a fresh install with no accounts or network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
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
    for step in ("list-unsynced", "sync --all", "history", "sync --payments", "Try next"):
        assert step in out
    _assert_payments_came_back(out)
    assert "Traceback" not in r.stderr
    assert list(scratch.iterdir()) == [], "without --keep the demo removes its temporary home"
    assert float(re.search(r"Demo finished in ([\d.]+) s", out).group(1)) < 15  # type: ignore[union-attr]


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _assert_payments_came_back(out: str) -> None:
    """Three QuickBooks payments (full, partial, one across two invoices) reach ConnectWise as four invoice
    payments, and each invoice's ConnectWise balance equals its QuickBooks balance to the cent."""
    step = out[out.index("sync --payments"):out.index("Try next")]
    assert "a bookkeeper receives 3 payments" in step, step
    received = re.findall(r"^(a full payment|a partial payment|one payment for two invoices|)\s*(\S+)\s+"
                          r"([\d,]+\.\d\d)\s+([\d,]+\.\d\d)\s*$", step, flags=re.M)
    assert [r[0] for r in received] == ["a full payment", "a partial payment", "one payment for two invoices", ""]
    (_, full, paid_full, owed_full), (_, part, paid_part, owed_part) = received[:2]
    assert paid_full == owed_full and _money(paid_part) < _money(owed_part)
    rows = re.findall(r"^(\S+)\s+(\d+)\s+(\d+)\s+([\d,]+\.\d\d)\s+([\d,]+\.\d\d)\s+([\d,]+\.\d\d)\s*$", step,
                      flags=re.M)
    assert [r[0] for r in rows] == [r[1] for r in received], step  # each invoice paid once in ConnectWise
    assert len({r[1] for r in rows}) == 3 and len({r[2] for r in rows}) == 4, "3 QBO payments, 4 CW payments"
    assert [r[3] for r in rows] == [r[2] for r in received], "ConnectWise got the amounts QuickBooks received"
    by_invoice = {r[0]: r for r in rows}
    assert by_invoice[full][4] == "0.00"  # paid in full: nothing left in ConnectWise
    assert _money(by_invoice[part][4]) == _money(owed_part) - _money(paid_part)
    assert all(cw == qbo for *_, cw, qbo in rows), "each ConnectWise balance equals QuickBooks'"
    assert "3 QuickBooks payments became 4 ConnectWise payments, 0 failed." in step
    assert "Every balance matches QuickBooks;" in step
