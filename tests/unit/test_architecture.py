"""The package tree is the architecture: imports flow cli → app → sync → {clients, mapping, state, settings} → core.

Read from the source (every import, including those inside functions), so an arrow drawn the wrong way fails
here before a reviewer has to spot it. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cwqbo"

# layer → the layers it may import (itself included). "core" is the bottom; settings (config, prefs, secrets)
# sit just above it, because both API clients read their settings and the OAuth client keeps its tokens there.
BELOW_SYNC = {"core", "settings", "state", "connectwise", "quickbooks", "mapping"}
LAYERS: dict[str, set[str]] = {
    "core": {"core"},
    "settings": {"core", "settings"},
    "connectwise": {"core", "settings", "connectwise"},
    "quickbooks": {"core", "settings", "quickbooks"},
    "state": {"core", "settings", "state"},
    "mapping": {"core", "settings", "mapping", "quickbooks"},  # quickbooks: Intuit's field limits table
    "sync": {*BELOW_SYNC, "sync"},
    "app": {*BELOW_SYNC, "sync", "app"},
    "cli": {*BELOW_SYNC, "sync", "app", "cli"},
    "sandbox": {"core", "sandbox", "quickbooks"},  # quickbooks: the same field limits the client obeys
}
CORE = {"money", "errors", "clock", "crashpoints", "http", "pagination", "models", "files", "in_flight", "collector",
        "__init__", "__main__"}
APP = {"context", "connect", "notify"}
# the two commands whose job is to run the simulators
MAY_IMPORT_SANDBOX = {"cwqbo.cli.demo", "cwqbo.cli.sandbox"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2:
        return "core"  # the package itself (`__version__`)
    top = parts[1]
    if top == "__main__":
        return "cli"  # `python -m cwqbo` is the command line
    if top in ("settings", "state", "connectwise", "quickbooks", "mapping", "sync", "cli", "sandbox"):
        return top
    if top in APP:
        return "app"
    if top in CORE:
        return "core"
    raise AssertionError(f"{module}: not placed in a layer; add it to tests/unit/test_architecture.py and the docs")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cwqbo"):
            for alias in node.names:  # `from cwqbo.sync import engine`: the module is cwqbo.sync.engine
                sub = PACKAGE.parent.joinpath(*node.module.split("."), alias.name)
                is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                found.add(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cwqbo"))
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs == "sandbox" and mine != "sandbox" and module not in MAY_IMPORT_SANDBOX:
                bad.append(f"{module} → {target}: product code never imports the simulator")
            elif theirs == "cli" and mine != "cli":
                bad.append(f"{module} → {target}: nothing below the CLI imports it")
            elif theirs not in LAYERS[mine] and not (theirs == "sandbox" and module in MAY_IMPORT_SANDBOX):
                bad.append(f"{module} → {target}: {mine} may not import {theirs}")
    return bad


def package_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_imports_flow_down_the_layers_only() -> None:
    graph = package_graph()
    assert len(graph) > 50
    assert violations(graph) == []


@pytest.mark.parametrize(("module", "target", "why"), [
    ("cwqbo.mapping.document", "cwqbo.sandbox.quickbooks.simulator", "never imports the simulator"),
    ("cwqbo.sync.engine", "cwqbo.cli.render", "below the CLI"),
    ("cwqbo.state.ledger", "cwqbo.sync.model", "state may not import sync"),
    ("cwqbo.money", "cwqbo.settings.prefs", "core may not import settings"),
    ("cwqbo.connectwise.client", "cwqbo.quickbooks.client", "connectwise may not import quickbooks"),
])
def test_the_checker_catches_an_arrow_drawn_the_wrong_way(module: str, target: str, why: str) -> None:
    [found] = violations({module: {target}})
    assert why in found


def test_the_demo_may_run_the_simulators_and_nothing_else_in_the_cli_may() -> None:
    assert violations({"cwqbo.cli.demo": {"cwqbo.sandbox.server"}}) == []
    assert violations({"cwqbo.cli.sync": {"cwqbo.sandbox.server"}})
