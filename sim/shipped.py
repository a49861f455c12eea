"""Where the data servesim ships lives: the checkout's models/ and scenarios/ folders, or — in an
installed wheel — the same files packaged as `sim.shipped_models` / `sim.shipped_scenarios` and read
through importlib.resources. Foundation module: imports nothing of servesim."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGED = {"models": "shipped_models", "scenarios": "shipped_scenarios"}  # folders inside the sim package


@lru_cache(maxsize=None)
def shipped_root(folder: str) -> Path | None:
    """The folder (`models` or `scenarios`) of shipped files: the checkout's, else the installed package's."""
    local = CHECKOUT / folder
    if local.is_dir():
        return local
    root = resources.files("sim").joinpath(PACKAGED[folder])
    path = Path(str(root))
    return path if root.is_dir() and path.is_dir() else None


def shipped_file(relative: str) -> Path | None:
    """`models/hardware.yaml`-style names -> the shipped file, or None if there is none."""
    folder, _, rest = relative.partition("/")
    root = shipped_root(folder) if folder in PACKAGED else None
    if root is None or not rest:
        return None
    path = root / rest
    return path if path.is_file() else None
