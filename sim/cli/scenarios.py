"""Shipped scenarios by name: `servesim scenarios` lists them, `servesim init NAME DIR` copies one to edit,
and every command that takes a scenario file also takes a shipped scenario's name (`servesim run mm3`),
from a checkout or from an installed wheel (sim/shipped.py finds the folder)."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from sim.errors import ServesimError
from sim.shipped import shipped_root

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SUMMARY_CHARS = 110


def register(subparsers) -> None:
    listing = subparsers.add_parser("scenarios", help="list the shipped scenarios, one line each")
    listing.set_defaults(func=cmd_scenarios)
    init = subparsers.add_parser("init", help="copy a shipped scenario (and the traces it replays) into a folder")
    init.add_argument("name", help="shipped scenario name (see `servesim scenarios`)")
    init.add_argument("folder", type=Path, help="folder to copy it into (created if missing)")
    init.add_argument("--force", action="store_true", help="overwrite files that already exist there")
    init.set_defaults(func=cmd_init)


def shipped_scenarios() -> dict[str, Path]:
    """Name -> file of every shipped scenario, sorted by name."""
    root = shipped_root("scenarios")
    if root is None:
        return {}
    return {path.stem: path for path in sorted(root.glob("*.yaml")) if not path.stem.startswith("_")}


def scenario_argument(text: str) -> Path:
    """A scenario on the command line: a file, or else the name of a shipped scenario (`mm3`, `mm3.yaml`)."""
    path = Path(text)
    if path.exists() or "/" in text or "\\" in text:
        return path
    shipped = shipped_scenarios().get(text.removesuffix(".yaml"))
    return shipped if shipped is not None else path


def summary_line(path: Path) -> str:
    """One line about a scenario: its `description:`, else the first sentence of its leading comment."""
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^description:\s*(.+)$", text, flags=re.MULTILINE)
    if match:
        line = match.group(1).strip().strip("'\"")
    else:
        comment = []
        for raw in text.splitlines():
            if not raw.startswith("#"):
                break
            comment.append(raw.lstrip("#").strip())
        line = " ".join(comment)
        line = re.split(r"(?<=[.:])\s", line, maxsplit=1)[0] if line else ""
    line = line.rstrip(":")
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1].rstrip() + "…"


def cmd_scenarios(args: argparse.Namespace) -> int:
    found = shipped_scenarios()
    if not found:
        raise ServesimError("scenarios: no shipped scenarios found in this installation")
    width = max(len(name) for name in found)
    for name, path in found.items():
        print(f"{name:<{width}}  {summary_line(path)}")
    print("\nrun one: servesim run NAME    copy one to edit: servesim init NAME DIR")
    return 0


def _referenced_files(path: Path, root: Path) -> list[Path]:
    """Files under the shipped scenarios folder that a scenario names (e.g. `traces/...csv`): models/ are
    found from anywhere, these travel with the copy."""
    from sim.spec.scenario import parse_yaml_numbers

    raw = parse_yaml_numbers(path.read_text(encoding="utf-8"), path.name, ServesimError)
    found: list[Path] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and "/" in node and ".." not in node and not node.startswith("/"):
            candidate = root / node
            if candidate.is_file():
                found.append(Path(node))

    walk(raw)
    return sorted(set(found))


def cmd_init(args: argparse.Namespace) -> int:
    from sim.cli.paths import output_dir

    name = args.name.removesuffix(".yaml")
    found = shipped_scenarios()
    if not _NAME.match(name) or name not in found:
        known = ", ".join(found) or "none"
        raise ServesimError(f"init: no shipped scenario of that name (shipped: {known})")
    folder = output_dir(Path(args.folder), "folder")
    source = found[name]
    copies = [(source, folder / source.name)]
    copies += [(source.parent / rel, folder / rel) for rel in _referenced_files(source, source.parent)]
    existing = [target for _, target in copies if target.exists()]
    if existing and not args.force:
        raise ServesimError(f"init: {existing[0].name} already exists in the folder (use --force to overwrite)")
    for origin, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
    print(f"copied {name}.yaml" + (f" and {len(copies) - 1} file(s) it replays" if len(copies) > 1 else ""))
    print(f"edit it, then: servesim run {folder / source.name}")
    return 0
