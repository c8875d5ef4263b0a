"""Issue 11: `sync --select` shows readiness and asks before sending; Ctrl-C is exit 130; a service that is down
when a run starts is exit 4 (like the same failure mid-run), naming the host."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from cwqbo.state.cache import CachedInvoice
from cwqbo.cli import sync as cli_sync
from tests.cli.test_bad_input_cli import Env, assert_clean_failure
from tests.cli.test_local_files import connected, env  # noqa: F401 - fixtures


def cached(number: str, company: str, total: str) -> CachedInvoice:
    from datetime import date

    fields = {f: None for f in CachedInvoice.__dataclass_fields__}
    fields.update(cw_id=1, number=number, type="Standard", status_name="Closed", closed=True, company_identifier="x",
                  company_name=company, date=date(2026, 9, 15), total=Decimal(total), subtotal=Decimal(total),
                  sales_tax=Decimal(0), line_count=1)
    return CachedInvoice(**fields)


def test_checklist_rows_stay_aligned_with_long_numbers_and_wide_names() -> None:
    rows = [cached("1042", "Acme", "12.00"), cached("INV-2026-0000001042-B", "株式会社東京システムサービス株式会社", "1234567.89"),
            cached("7", "Ünïcode Çompany", "-5.10")]
    verdicts = [("ready", ""), ("not ready", "no QBO item for product LAPTOP-14"), ("ready", "")]
    titles = cli_sync.checklist_titles(rows, verdicts)
    assert titles[0].startswith("✓ 1042 ") and titles[1].startswith("✗ INV-2026-0000001042-B ")
    assert titles[1].endswith("not ready: no QBO item for product LAPTOP-14")
    assert "1,234,567.89" in titles[1] and "2026-09-15" in titles[1]
    # every column starts at the same terminal cell: dates and totals line up
    date_at = {cell_len(t[:t.index("2026-09-15")]) for t in titles}
    total_end = {cell_len(t[:t.index(m) + len(m)]) for t, m in zip(titles, ["12.00", "1,234,567.89", "-5.10"])}
    assert len(date_at) == 1 and len(total_end) == 1


class FakeQuestion:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def ask(self) -> Any:  # what questionary does on Ctrl-C: print "Cancelled" and return None
        return None if isinstance(self.answer, BaseException) else self.answer

    def unsafe_ask(self) -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import questionary

    seen: dict[str, Any] = {"confirm": True}
    monkeypatch.setattr(cli_sync, "_is_tty", lambda: True)

    def checkbox(message: str, choices: list[Any]) -> FakeQuestion:
        seen["choices"] = choices
        return FakeQuestion(seen.get("pick", [c.value for c in choices[:2]]))

    def confirm(message: str, default: bool = True) -> FakeQuestion:
        seen["question"], seen["default"] = message, default
        return FakeQuestion(seen["confirm"])

    monkeypatch.setattr(questionary, "checkbox", checkbox)
    monkeypatch.setattr(questionary, "confirm", confirm)
    return seen


def test_select_marks_readiness_and_confirms_before_sending(env: Env, interactive: dict[str, Any]) -> None:  # noqa: F811
    interactive["confirm"] = False
    result = env.invoke("sync", "--select")
    assert result.exit_code == 0, result.stderr
    titles = [c.title for c in interactive["choices"]]
    assert titles and all(t[0] in "✓✗" for t in titles)
    assert interactive["question"].startswith("Sync 2 invoice(s) totalling ") and interactive["default"] is False
    assert "cancelled: nothing was sent" in result.stderr
    history = json.loads(env.invoke("history", "--json").stdout)
    assert history["data"]["runs"] == []  # declining sent nothing and recorded no run


def test_ctrl_c_in_the_checklist_is_exit_130(env: Env, interactive: dict[str, Any]) -> None:  # noqa: F811
    interactive["pick"] = KeyboardInterrupt()
    result = env.invoke("sync", "--select")
    assert result.exit_code == 130, (result.exit_code, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("interrupted") and "Traceback" not in result.stderr


def test_connectwise_down_when_a_run_starts_is_exit_4_naming_the_host(env: Env) -> None:  # noqa: F811
    import re

    config = env.home / "config.toml"
    text = config.read_text()
    site = re.search(r'site = "([^"]+)"', text)
    assert site
    config.write_text(text.replace(site.group(1), "127.0.0.1:9"))  # nothing listens on the discard port
    result = env.invoke("sync", "--all")
    line = assert_clean_failure(result, (4,))
    assert "127.0.0.1:9" in line


def test_not_connected_is_exit_3(home: Path) -> None:
    from typer.testing import CliRunner

    from cwqbo.cli.main import app

    result = CliRunner().invoke(app, ["sync", "--all"])
    assert result.exit_code == 3 and "not connected" in result.stderr


def test_companyinfo_transport_error_reported_as_config_error_becomes_exit_4() -> None:
    """The client (another module) used to turn an unreachable site into ConfigError ("check the site name")."""
    import httpx

    from cwqbo.settings.config import CWSettings
    from cwqbo.context import fetch_company_info_or_remote_error
    from cwqbo.errors import ConfigError, RemoteError

    settings = CWSettings(site="na.myconnectwise.net", company_id="acme")

    def down(*args: Any, **kwargs: Any) -> Any:
        try:
            raise httpx.ConnectTimeout("timed out")
        except httpx.TransportError as exc:
            raise ConfigError("cannot reach ConnectWise site na.myconnectwise.net: ConnectTimeout",
                              hint="check the site name and your network") from exc

    def http_503(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("ConnectWise site na.myconnectwise.net answered HTTP 503 for companyinfo")

    def unknown_company(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("ConnectWise company 'acme' not found on site na.myconnectwise.net")

    for fetch in (down, http_503):
        with pytest.raises(RemoteError, match=r"ConnectWise \(na.myconnectwise.net\) is unreachable") as exc:
            fetch_company_info_or_remote_error(fetch, settings)
        assert exc.value.exit_code == 4
    with pytest.raises(ConfigError):  # a real config error stays exit 2
        fetch_company_info_or_remote_error(unknown_company, settings)


def test_any_unhandled_network_error_is_exit_4_with_the_host(env: Env, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                                                             ) -> None:
    import httpx

    from cwqbo.context import AppContext

    def unreachable(self: Any) -> Any:
        raise httpx.ConnectError("Name or service not known",
                                 request=httpx.Request("GET", "https://quickbooks.api.intuit.com/v3/company"))

    monkeypatch.setattr(AppContext, "qbo_client", unreachable)
    line = assert_clean_failure(env.invoke("sync", "--all"), (4,), "quickbooks.api.intuit.com")
    assert "unreachable" in line
