"""Finding and reading the data files a scenario names (traces, empirical samples, profiles).

Files named inside a scenario resolve only inside allowed folders (`FileAccess`): a scenario is
untrusted input and must not make the simulator read, or echo back, arbitrary host files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

import yaml

from sim.errors import DataFileError, ServesimError
from sim.shipped import shipped_file, shipped_root

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Shipped data a scenario may always name: scenarios (and their traces), model profiles, data tables.
SHIPPED_DATA_DIRS = ("scenarios", "models", "data")
MAX_DATA_FILE_BYTES = 200_000_000
MAX_YAML_BYTES = 1_000_000
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 200_000
MAX_PATH_CHARS = 1024


@dataclass(frozen=True)
class FileAccess:
    """The folders files named in a scenario may resolve into (after following symlinks)."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, roots) -> "FileAccess":
        return cls(tuple(Path(r).expanduser().resolve() for r in roots))

    def allows(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self.roots)

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots) or "none"


def shipped_data_roots() -> tuple[Path, ...]:
    """The project's own data folders (in a checkout, or packaged in an installed wheel): what a planner
    upload may name."""
    roots = [PROJECT_ROOT / name for name in SHIPPED_DATA_DIRS]
    roots += [root for root in (shipped_root("models"), shipped_root("scenarios")) if root is not None]
    return tuple(dict.fromkeys(roots))


def default_access(base_dir: str | Path) -> FileAccess:
    """For a scenario file on disk (the CLI): its own folder plus the project's shipped data."""
    return FileAccess.of((Path(base_dir), *shipped_data_roots()))


def resolve_path(path: str | Path, context: Mapping[str, Any] | None) -> Path:
    """Resolve a path from a scenario: relative to the scenario file's folder, its parent (the project
    root for `scenarios/x.yaml`) or the working directory; it must lie inside the allowed folders."""
    context = context or {}
    text = str(path)
    if len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise ValueError(f"file name is longer than {MAX_PATH_CHARS} characters or contains a NUL byte")
    base_dir = Path(context.get("base_dir") or ".")
    access: FileAccess = context.get("file_access") or default_access(base_dir)
    path = Path(text)
    if text.startswith("~"):
        raise ValueError(f"{text}: '~' paths are not allowed; name the file relative to the scenario")
    candidates = [path] if path.is_absolute() else [base_dir / path, base_dir.parent / path, Path.cwd() / path]
    shipped = None if path.is_absolute() else shipped_file(path.as_posix())
    if shipped is not None:  # e.g. models/NAME.yaml from an installed servesim
        candidates.append(shipped)
    outside = None
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            if not access.allows(resolved):
                outside = outside or candidate
                continue
            if resolved.is_file():
                return resolved
        except (OSError, RuntimeError):  # a name too long for the OS, a symlink loop
            continue
    if outside is not None:
        raise ValueError(f"{text} is outside the allowed folders ({access.describe()})")
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ValueError(f"file not found: {text} (looked at {tried})")


def _check_size(path: Path, what: str, limit: int = MAX_DATA_FILE_BYTES) -> None:
    try:
        stat = path.stat()
    except OSError:
        raise DataFileError(f"{what}: file not found: {path}") from None
    if not path.is_file():
        raise DataFileError(f"{what}: {path} is not a regular file")
    if stat.st_size > limit:
        raise DataFileError(f"{what}: {path} is {stat.st_size} bytes, above the limit of {limit}")


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV, turning every way it can fail into a DataFileError that names the file (never its
    contents: a misnamed file must not be echoed back)."""
    _check_size(Path(path), what)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataFileError(f"{what}: file not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError):
        raise DataFileError(f"{what}: cannot read {path} as CSV") from None
    if frame.empty:
        raise DataFileError(f"{what}: {path} has no rows")
    return frame


def numeric_column(frame: pd.DataFrame, column: str, path: Path, what: str) -> np.ndarray:
    """One column as finite non-negative floats; names the file, the column and the first bad row."""
    if column not in frame.columns:
        # Column names come from the file's first line: count them, never quote them.
        raise DataFileError(f"{what}: {path} has no column {column!r} ({len(frame.columns)} columns)")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFileError(f"{what}: {path} column {column!r} row {row + 2} is not a number")
    array = values.to_numpy(dtype=float)
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataFileError(f"{what}: {path} column {column!r} row {row + 2} is not finite")
    if (array < 0).any():
        row = int(np.flatnonzero(array < 0)[0])
        raise DataFileError(f"{what}: {path} column {column!r} row {row + 2} is negative: {array[row]}")
    return array


def read_numeric_column(path: Path, column: str | None, what: str) -> np.ndarray:
    frame = read_csv(path, what)
    return numeric_column(frame, column or str(frame.columns[0]), path, what)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, deep nesting and node floods (alias bombs)."""

    def compose_node(self, parent, index):
        # Depth is the composer's recursion: count it before pyyaml recurses into children.
        depth = getattr(self, "_depth", 0)
        if depth > MAX_YAML_DEPTH:
            raise _YamlLimit(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                if duplicate:
                    raise _YamlLimit(f"duplicate key {str(key)[:40]!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


class _YamlLimit(yaml.YAMLError):
    def __init__(self, problem: str, mark) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


def parse_yaml(text: str, source: str, error: type[ServesimError]) -> Any:
    """YAML text -> data (safe tags only, no duplicate keys, bounded size, depth and expansion); a
    problem is raised as `error` naming the source, line and column."""
    if len(text) > MAX_YAML_BYTES:
        raise error(f"{source}: YAML is larger than {MAX_YAML_BYTES} bytes")
    try:
        loader = _StrictLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply") from None
    size = expanded_size(data)
    if size > MAX_YAML_NODES:
        raise error(f"{source}: YAML expands to more than {MAX_YAML_NODES} values (repeated aliases?)")
    return data


def expanded_size(data: Any, limit: int = MAX_YAML_NODES) -> int:
    """Values in `data` with every alias expanded, counted without expanding (a billion-laughs list
    shares one object many times); stops counting past `limit`."""
    memo: dict[int, int] = {}

    def size(value: Any, depth: int) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key not in memo:
            if depth > MAX_YAML_DEPTH:
                return limit + 1
            children = value.values() if isinstance(value, dict) else value
            total = 1
            for child in children:
                total += size(child, depth + 1)
                if total > limit:
                    break
            memo[key] = total
        return memo[key]

    return size(data, 0)
