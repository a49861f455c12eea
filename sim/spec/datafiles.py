"""Finding and reading the data files a scenario names (traces, empirical samples, profiles).

Files named inside a scenario resolve only inside allowed folders (`FileAccess`): a scenario is
untrusted input and must not make the simulator read, or echo back, arbitrary host files.
"""

from __future__ import annotations

import csv
import functools
import os
import typing
import warnings
import re
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, Mapping

import numpy as np
import pandas as pd

import yaml
from pydantic import BaseModel, ValidationError

from sim.errors import DataFileError, ServesimError
from sim.shipped import shipped_file, shipped_root
from sim.spec.bounds import MAX_INT_DIGITS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Shipped data a scenario may always name: scenarios (and their traces), model profiles, data tables.
SHIPPED_DATA_DIRS = ("scenarios", "models", "data")
MAX_DATA_FILE_BYTES = 200_000_000
MAX_YAML_BYTES = 1_000_000
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 200_000
MAX_PATH_CHARS = 1024
MAX_CSV_COLUMNS = 1_000
MAX_CSV_HEADER_BYTES = 1_000_000
MAX_CSV_VALUES = 20_000_000  # rows × columns: 160 MB as floats, whatever the file's size on disk
CSV_CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class FileAccess:
    """The folders files named in a scenario may resolve into (after following symlinks)."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, roots) -> "FileAccess":
        return cls(tuple(Path(r).expanduser().resolve() for r in roots))

    def allows(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self.roots)


def shipped_data_roots() -> tuple[Path, ...]:
    """The project's own data folders (in a checkout, or packaged in an installed wheel): what a planner
    upload may name."""
    roots = [PROJECT_ROOT / name for name in SHIPPED_DATA_DIRS]
    roots += [root for root in (shipped_root("models"), shipped_root("scenarios")) if root is not None]
    return tuple(dict.fromkeys(roots))


def default_access(base_dir: str | Path) -> FileAccess:
    """For a scenario file on disk (the CLI): its own folder plus the project's shipped data."""
    return FileAccess.of((Path(base_dir), *shipped_data_roots()))


def shown(path: str | Path) -> str:
    """A file's name as a message may show it: relative to the working folder or the project (or a
    shipped data folder), else its bare name; never an absolute server path."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    for root in (Path.cwd(), PROJECT_ROOT, *shipped_data_roots()):
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


def data_error(
    what: str, path: str | Path, problem: str, *, column: str | None = None, row: int | None = None
) -> DataFileError:
    """The one error for a data file: `what` it is, the file (see `shown`), the column the reader asked
    for, the row as numbered in the file, and what was expected. Never pass text read from the file:
    `column` is a name the scenario or the tool asked for, never a header found in the file."""
    where = f"{what} {shown(path)}:"
    if column is not None:
        where += f" column {column!r}"
    if row is not None:
        where += f" row {row}"
    return DataFileError(f"{where} {problem}")


def check_data_file(path: Path, what: str, limit: int = MAX_DATA_FILE_BYTES, links: bool = True) -> os.stat_result:
    """A regular file (not a folder, device or pipe) of at most `limit` bytes; with `links` False, one
    with other hard links is refused too (a hard link would carry a file from anywhere into an allowed
    folder)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise data_error(what, path, "file not found") from None
    except OSError:
        raise data_error(what, path, "cannot be read") from None
    if S_ISDIR(stat.st_mode):
        raise data_error(what, path, "is a folder, not a file")
    if not S_ISREG(stat.st_mode):
        raise data_error(what, path, "is not a regular file")
    if not links and stat.st_nlink > 1:
        raise data_error(what, path, "has other hard links: copy the file instead of linking it")
    if stat.st_size > limit:
        raise data_error(what, path, f"is {stat.st_size} bytes, above the limit of {limit}")
    return stat


def _shipped(path: Path) -> bool:
    return any(path.is_relative_to(root.resolve()) for root in shipped_data_roots())


def resolve_path(path: str | Path, context: Mapping[str, Any] | None) -> Path:
    """Resolve a path from a scenario: relative to the scenario file's folder, its parent (the project
    root for `scenarios/x.yaml`) or the working directory; it must be a regular file with no other hard
    link inside the allowed folders. Tells a missing file, a folder and a file outside those folders
    apart; names only the text the scenario gave, never a folder of the server."""
    context = context or {}
    text = str(path)
    if not text.strip():
        raise ValueError("empty file name")
    if len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise ValueError(f"file name is longer than {MAX_PATH_CHARS} characters or contains a NUL byte")
    base_dir = Path(context.get("base_dir") or ".")
    owner = context.get("owner") or "the scenario's"  # whose folder names resolve in: a sweep's, for its scenario
    access: FileAccess = context.get("file_access") or default_access(base_dir)
    path = Path(text)
    if text.startswith("~"):
        raise ValueError(f"{text}: '~' paths are not allowed; name the file relative to the scenario")
    candidates = [path] if path.is_absolute() else [base_dir / path, base_dir.parent / path, Path.cwd() / path]
    shipped = None if path.is_absolute() else shipped_file(path.as_posix())
    if shipped is not None:  # e.g. models/NAME.yaml from an installed servesim
        candidates.append(shipped)
    # A name that climbs out (absolute, `..`) is "outside" whether or not it exists: no probing the host.
    climbs = path.is_absolute() or ".." in path.parts
    problem = None
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            if not access.allows(resolved):
                if climbs or resolved.exists():
                    problem = problem or "outside"
                continue
            if not resolved.exists():
                continue
            stat = resolved.stat()
        except (OSError, RuntimeError):  # a name too long for the OS, a symlink loop
            continue
        # Shipped data may be hard-linked by its installer (uv links wheels from its cache): trusted as is.
        if S_ISREG(stat.st_mode) and (stat.st_nlink == 1 or _shipped(resolved)):
            return resolved
        if S_ISDIR(stat.st_mode):
            problem = problem or "folder"
        elif S_ISREG(stat.st_mode):
            problem = problem or "links"
        else:
            problem = problem or "special"
    messages = {
        "outside": f"{text} is outside the allowed folders ({owner} folder and the project's"
        f" {', '.join(d + '/' for d in SHIPPED_DATA_DIRS)})",
        "folder": f"{text} is a folder, not a file",
        "links": f"{text} has other hard links: copy the file instead of linking it",
        "special": f"{text} is not a regular file",
    }
    if problem is not None:
        raise ValueError(messages[problem])
    raise ValueError(f"file not found: {text} (names are relative to {owner} folder)")


def _header_columns(path: Path, what: str) -> int:
    """Columns of a CSV's first line, read with bounded memory; refuses a line or a count over the limits."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_CSV_HEADER_BYTES + 1)
    line, newline, _ = head.partition(b"\n")
    try:
        fields = next(csv.reader([line.decode("utf-8-sig", errors="strict" if newline else "ignore").rstrip("\r")]), [])
    except UnicodeDecodeError:
        raise data_error(what, path, "is not UTF-8 text") from None
    except csv.Error:
        raise data_error(what, path, "cannot be read as CSV", row=1) from None
    if len(fields) > MAX_CSV_COLUMNS:
        found = f"has {len(fields)} columns, above" if newline else "has more columns than"
        raise data_error(what, path, f"{found} the limit of {MAX_CSV_COLUMNS} columns")
    if not newline and len(head) > MAX_CSV_HEADER_BYTES:
        raise data_error(what, path, f"the first line is longer than {MAX_CSV_HEADER_BYTES} bytes")
    return max(len(fields), 1)


def _read_chunks(path: Path, what: str, chunk_rows: int, max_rows: int, columns: int) -> tuple[list, int]:
    chunks, rows = [], 0
    with pd.read_csv(path, chunksize=chunk_rows, index_col=False, encoding="utf-8") as reader:
        for chunk in reader:
            rows += len(chunk)
            if rows > max_rows:
                limit = f"has more than {max_rows} rows of {columns} columns (the limit is {MAX_CSV_VALUES} values)"
                raise data_error(what, path, limit)
            chunks.append(chunk)
    return chunks, rows


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV in chunks with bounded memory (at most MAX_CSV_COLUMNS columns and MAX_CSV_VALUES
    values), turning every way it can fail into a `data_error` that names the file, never its contents."""
    path = Path(path)
    check_data_file(path, what)
    columns = _header_columns(path, what)
    chunk_rows = max(1, CSV_CHUNK_VALUES // columns)
    max_rows = MAX_CSV_VALUES // columns
    try:
        with warnings.catch_warnings():
            # pandas only warns when a row has one field more than the header, and drops it: refuse instead.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            chunks, rows = _read_chunks(path, what, chunk_rows, max_rows, columns)
    except DataFileError:
        raise
    except pd.errors.ParserWarning:
        raise data_error(what, path, "cannot be read as CSV (a row with more fields than the header)") from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise data_error(
            what,
            path,
            "cannot be read as CSV (a row with more fields than the header, or a broken quote)",
            row=int(line.group(1)) if line else None,
        ) from None
    except pd.errors.EmptyDataError:
        raise data_error(what, path, "is empty: no rows") from None
    except UnicodeDecodeError:
        raise data_error(what, path, "is not UTF-8 text") from None
    except (ValueError, OSError):
        raise data_error(what, path, "cannot be read as CSV") from None
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0] if chunks else pd.DataFrame()
    if frame.empty:
        raise data_error(what, path, "has no rows")
    return frame


def numeric_column(frame: pd.DataFrame, column: str | None, path: Path, what: str) -> np.ndarray:
    """One column as finite non-negative floats (None: the first column); names the file, the column
    asked for (the first one as `column 1`: its name comes from the file) and the first bad row."""
    if column is not None and column not in frame.columns:
        # Column names come from the file's first line: count them, never quote them.
        raise data_error(what, path, f"no column {column!r} ({len(frame.columns)} columns)")
    values = pd.to_numeric(frame[column] if column is not None else frame.iloc[:, 0], errors="coerce")
    array = values.to_numpy(dtype=float)
    for bad, expected in (
        (np.isnan(array), "is not a number"),
        (~np.isfinite(array), "is not finite"),
        (array < 0, "is negative"),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 2
            if column is None:
                raise data_error(what, path, f"column 1 row {row} {expected}")
            raise data_error(what, path, expected, column=column, row=row)
    return array


def read_numeric_column(path: Path, column: str | None, what: str) -> np.ndarray:
    return numeric_column(read_csv(path, what), column or None, path, what)


@functools.cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    """Every field name of a model and the models nested in it: the keys an error may name."""
    names: set[str] = set()
    seen, todo = {model.__name__}, [model]
    while todo:
        current = todo.pop()
        for name, info in current.model_fields.items():
            names.add(name)
            types = [info.annotation]
            while types:
                kind = types.pop()
                if isinstance(kind, type) and issubclass(kind, BaseModel) and kind.__name__ not in seen:
                    seen.add(kind.__name__)
                    todo.append(kind)
                types.extend(typing.get_args(kind))
    return frozenset(names)


def validation_problems(exc: ValidationError, model: type[BaseModel], fields: str) -> str:
    """A data file's validation errors as field paths and what was expected: a key that is not one of
    `model`'s fields is counted, not named (the file may be anything the scenario pointed at)."""
    parts, unknown = [], 0
    for err in exc.errors():
        if err["type"] == "extra_forbidden":
            unknown += 1
            continue
        names = _field_names(model)
        loc = ".".join(str(p) if isinstance(p, int) or p in names else "<key>" for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    if unknown:
        parts.append(f"{unknown} key(s) that are not {fields}")
    return "; ".join(parts)


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


def parse_yaml(text: str, source: str, error: type[ServesimError], quote: bool = True) -> Any:
    """YAML text -> data (safe tags only, no duplicate keys, bounded size, depth and expansion); a
    problem is raised as `error` naming the source, line and column. With `quote` False (a data file,
    not the scenario the user wrote) the parser's words, which may quote the file, are left out."""
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
        detail = f": {getattr(exc, 'problem', None) or exc}" if quote else ""
        raise error(f"{source}: not valid YAML{where}{detail}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply") from None
    except ValueError:  # a number beyond what Python converts (e.g. thousands of digits), a bad timestamp
        raise error(
            f"{source}: a number has more than {MAX_INT_DIGITS} digits (or a date is not one), past every limit"
        ) from None
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
