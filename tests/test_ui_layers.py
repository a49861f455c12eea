"""ui/ sits on top (DESIGN.md: sim/cli, ui/ are the last layer): nothing under sim/ or calibrate/ imports it,
and the planner's text, tables and verdicts come from sim/present (ui/ draws them, it does not word them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_imports_the_planner():
    below = [*ROOT.joinpath("sim").rglob("*.py"), *ROOT.joinpath("calibrate").rglob("*.py")]
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m == "ui" or m.startswith("ui."))
        for path in below
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_app_py_is_an_entry_over_the_ui_package():
    app = ROOT / "app.py"
    assert len(app.read_text(encoding="utf-8").splitlines()) <= 300
    assert any(m.startswith("ui.") for m in imported_modules(app))
