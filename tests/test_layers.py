"""The layers of sim/ import only the ones below them; plotting and terminal output live in sim/present
(and the command line); sim never imports calibrate. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import modules of its own layer or of any layer before it.
LAYERS = ("foundation", "spec", "engine", "metrics", "analysis", "present", "cli")
FOUNDATION = {"sim", "sim.errors", "sim.streams", "sim.theory", "sim.shipped"}
DRAWING = ("matplotlib", "altair")
TERMINAL = ("rich",)


def layer_of(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    parts = module.split(".")
    assert parts[0] == "sim" and parts[1] in LAYERS, (
        f"{module} is in no layer: put it in one of sim/{{{', '.join(LAYERS[1:])}}}/"
    )
    return parts[1]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from sim.present import plots` imports sim.present.plots
            found += [
                (node.lineno, f"{node.module}.{alias.name}")
                for alias in node.names
                if (ROOT / Path(*f"{node.module}.{alias.name}".split("."))).with_suffix(".py").exists()
            ]
    return found


SIM_MODULES = sorted(p for p in (ROOT / "sim").rglob("*.py"))


def test_every_module_is_in_a_layer():
    for path in SIM_MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SIM_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_down_the_layers(path):
    here = module_name(path)
    rank = LAYERS.index(layer_of(here))
    wrong = []
    for line, name in imports(path):
        top = name.split(".")[0]
        if top == "calibrate":
            wrong.append(f"line {line}: {name} (sim never imports calibrate)")
        elif top == "sim" and name not in FOUNDATION and name.split(".")[1] in LAYERS:
            if LAYERS.index(layer_of(name)) > rank:
                wrong.append(f"line {line}: {name} ({layer_of(name)} is above {layer_of(here)})")
        elif top in DRAWING and layer_of(here) != "present":
            wrong.append(f"line {line}: {name} (drawing belongs in sim/present)")
        elif top in TERMINAL and layer_of(here) not in ("present", "cli"):
            wrong.append(f"line {line}: {name} (terminal output belongs in sim/present or sim/cli)")
    assert not wrong, f"{here}: " + "; ".join(wrong)


def test_the_engine_never_imports_simpy_outside_its_layer():
    for path in SIM_MODULES:
        here = module_name(path)
        if layer_of(here) != "engine":
            assert all(name.split(".")[0] != "simpy" for _, name in imports(path)), here


def test_the_rule_itself_catches_an_upward_import(tmp_path):
    """The checker reads a wrong import as wrong (so a passing test means something)."""
    fake = ROOT / "sim" / "engine" / "_layer_probe.py"
    fake.write_text("def f():\n    from sim.metrics.summary import summarize\n")
    try:
        with pytest.raises(AssertionError, match="metrics is above engine"):
            test_imports_run_down_the_layers(fake)
    finally:
        fake.unlink()
