"""Finding and reading the data files a scenario names (traces, empirical samples, profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

import yaml

from sim.errors import DataFileError, ServesimError
from sim.shipped import shipped_file


def resolve_path(path: str | Path, context: Mapping[str, Any] | None) -> Path:
    """Resolve a path from a scenario: absolute, else relative to the scenario file's folder, its parent
    (the project root for `scenarios/x.yaml`), or the working directory. Raises if none exists."""
    path = Path(path).expanduser()
    base_dir = Path((context or {}).get("base_dir") or ".")
    candidates = [path] if path.is_absolute() else [base_dir / path, base_dir.parent / path, Path.cwd() / path]
    shipped = None if path.is_absolute() else shipped_file(path.as_posix())
    if shipped is not None:  # e.g. models/NAME.yaml from an installed servesim
        candidates.append(shipped)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ValueError(f"file not found: {path} (looked at {tried})")


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV, turning every way it can fail into a DataFileError that names the file."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataFileError(f"{what}: file not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{what}: cannot read {path} as CSV ({exc})") from None
    if frame.empty:
        raise DataFileError(f"{what}: {path} has no rows")
    return frame


def numeric_column(frame: pd.DataFrame, column: str, path: Path, what: str) -> np.ndarray:
    """One column as floats; names the file, the column and the first bad row on failure."""
    if column not in frame.columns:
        raise DataFileError(f"{what}: {path} has no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFileError(
            f"{what}: {path} column {column!r} row {row + 2} is not a number: {frame[column].iloc[row]!r}"
        )
    array = values.to_numpy(dtype=float)
    if (array < 0).any():
        row = int(np.flatnonzero(array < 0)[0])
        raise DataFileError(f"{what}: {path} column {column!r} row {row + 2} is negative: {array[row]}")
    return array


def read_numeric_column(path: Path, column: str | None, what: str) -> np.ndarray:
    frame = read_csv(path, what)
    return numeric_column(frame, column or str(frame.columns[0]), path, what)


def parse_yaml(text: str, source: str, error: type[ServesimError]) -> Any:
    """YAML text -> data, with a parse error raised as `error` naming the source, line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
