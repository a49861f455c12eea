"""The manifest of a run log folder: what the writer wrote, so that a reader can prove it reads just that.

`manifest.json` lists, per frame, its rows (in all and per replication) and its columns with their
parquet types, and per file its size and SHA-256. `verify` refuses a folder whose files do not match,
with one line naming the file and what differs (a column dropped, rows added, a type changed, or only
the checksum), and reads nothing that could be a tampered file before its checksum has held. The
manifest is written last: a folder without one is a log cut short, or one written by a servesim older
than the manifest, and is refused either way (rerun the scenario).
Content checks that hold for every log the engine writes (`check_requests`) back the checksums: a
manifest rewritten to match a tampered file still fails them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import DataFileError

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = 1
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class FrameCounts:
    """What a writer learns of one frame as it appends it: columns with types, rows per replication."""

    def __init__(self, schema) -> None:
        self.columns = {field.name: str(field.type) for field in schema}
        self.rows_per_replication: dict[str, int] = {}

    def add(self, frame: pd.DataFrame) -> None:
        if "replication" not in frame or not len(frame):
            self.rows_per_replication.setdefault("all", 0)
            self.rows_per_replication["all"] += len(frame)
            return
        reps, counts = np.unique(frame["replication"].to_numpy(), return_counts=True)
        for rep, count in zip(reps, counts):
            key = str(int(rep))
            self.rows_per_replication[key] = self.rows_per_replication.get(key, 0) + int(count)

    def entry(self, file: str) -> dict:
        return {
            "file": file,
            "rows": sum(self.rows_per_replication.values()),
            "rows_per_replication": self.rows_per_replication,
            "columns": self.columns,
        }


def write_manifest(folder: Path, frames: dict[str, FrameCounts], files: list[Path], run_format: int) -> Path:
    """`manifest.json` for `files` (all in `folder`), the frames among them described by `frames`."""
    manifest = {
        "servesim_run_log": MANIFEST_SCHEMA,
        "format": run_format,
        "frames": {name: counts.entry(f"{name}.parquet") for name, counts in frames.items()},
        "files": {path.name: {"bytes": path.stat().st_size, "sha256": sha256_of(path)} for path in files},
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def shown(folder: Path) -> str:
    """The folder as a message names it: relative to the working folder, else by its own name."""
    folder = Path(folder)
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve())) or "."
    except (ValueError, OSError):
        return folder.name or str(folder)


def _refuse(folder: Path, what: str) -> DataFileError:
    return DataFileError(f"run log {shown(folder)}: {what}")


def verify(folder: Path, frame_names: tuple[str, ...]) -> dict:
    """The folder's manifest, once every file it lists is there with its size and checksum, and no frame
    file is there that it does not list; else one clear error naming the file and what differs."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise _refuse(
            folder,
            f"no {MANIFEST_FILE}: the log is incomplete (its run stopped before the end) or was written "
            "by an older servesim; rerun with --log",
        )
    manifest = _read_manifest(folder, path)
    files = manifest["files"]
    for name, entry in files.items():
        file = folder / name
        if not file.is_file():
            raise _refuse(folder, f"{name} is missing (the manifest lists it)")
        if file.stat().st_size != entry["bytes"] or sha256_of(file) != entry["sha256"]:
            raise _refuse(folder, f"{name}: {_difference(file, manifest)}")
    for frame in frame_names:
        name = f"{frame}.parquet"
        if name not in files and (folder / name).exists():
            raise _refuse(folder, f"{name} is not in the manifest (added after the log was written)")
    return manifest


def _read_manifest(folder: Path, path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError):
        raise _refuse(folder, f"{MANIFEST_FILE} is not valid JSON") from None
    try:
        schema = manifest["servesim_run_log"]
        files, frames = manifest["files"], manifest["frames"]
        valid = (
            isinstance(schema, int)
            and all(isinstance(e["bytes"], int) and isinstance(e["sha256"], str) for e in files.values())
            and all(
                isinstance(e["rows_per_replication"], dict) and isinstance(e["columns"], dict) for e in frames.values()
            )
            and all(f"{name}.parquet" in files for name in frames)
        )
    except (KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise _refuse(folder, f"{MANIFEST_FILE} is not a servesim run-log manifest")
    if schema > MANIFEST_SCHEMA:
        raise _refuse(folder, f"{MANIFEST_FILE}: written by a newer servesim (manifest schema {schema}); upgrade")
    return manifest


def _difference(file: Path, manifest: dict) -> str:
    """What differs between a file and its manifest entry, as far as can be told without trusting it."""
    if file.suffix == ".parquet":
        frame = manifest["frames"].get(file.stem)
        if frame is not None:
            found = _frame_difference(file, frame)
            if found:
                return found
    elif file.suffix == ".json":
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "not valid JSON (changed after the log was written)"
    return "contents differ from the manifest (SHA-256 checksum): changed after the log was written"


def _frame_difference(file: Path, entry: dict) -> str | None:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
        rows = pq.ParquetFile(file).metadata.num_rows
    except Exception:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        return "cannot be read as parquet (damaged or not parquet)"
    expected = entry["columns"]
    present = {field.name: str(field.type) for field in schema}
    missing = [name for name in expected if name not in present]
    if missing:
        return f"{_count(len(missing), 'column')} missing ({', '.join(map(repr, missing[:5]))}) that the manifest lists"
    extra = [name for name in present if name not in expected]
    if extra:
        return f"{_count(len(extra), 'column')} the manifest does not list"
    for name, kind in expected.items():
        if present[name] != kind:
            return f"column {name!r} is {present[name]} where the manifest says {kind}"
    listed = sum(entry["rows_per_replication"].values())
    if rows != listed:
        if rows == 0:
            return f"holds no requests (the manifest lists {listed} rows)"
        return f"{rows} rows where the manifest lists {listed}"
    if "replication" in present:
        reps, counts = np.unique(pq.read_table(file, columns=["replication"])["replication"], return_counts=True)
        found = {str(int(rep)): int(count) for rep, count in zip(reps, counts)}
        for rep, count in entry["rows_per_replication"].items():
            if rep != "all" and found.get(rep, 0) != count:
                return f"replication {rep} has {found.get(rep, 0)} rows where the manifest lists {count}"
    return None


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


NUMBER_SUFFIXES = ("_ms", "_batch_id", "_batch_size", "_replica", "_instance")


def check_requests(folder: Path, requests: pd.DataFrame, required: dict[str, str]) -> None:
    """What every request log the engine writes meets, checked per replication: the `required` columns
    (name -> "bool" / "number") are there with that kind; `request` numbers 0, 1, ... in order (no row
    repeated or dropped); arrival times finite, non-negative and in order; no time (`*_ms`) negative."""
    where = "requests.parquet"
    for name, kind in required.items():
        if name not in requests:
            raise _refuse(folder, f"{where}: column {name!r} is missing")
        dtype = requests[name].dtype
        ok = pd.api.types.is_bool_dtype(dtype) if kind == "bool" else _is_number(dtype)
        if not ok:
            raise _refuse(folder, f"{where}: column {name!r} is not {'true/false' if kind == 'bool' else 'numeric'}")
    for name in requests.columns:  # every per-stage figure the summary reads is a number
        if name.endswith(NUMBER_SUFFIXES) and name not in required and not _is_number(requests[name].dtype):
            raise _refuse(folder, f"{where}: column {name!r} is not numeric")
    replication = requests["replication"].to_numpy()
    reps, starts = np.unique(replication, return_index=True)
    if len(reps) > 1 and np.any(replication[1:] < replication[:-1]):
        raise _refuse(folder, f"{where}: replications are not in order")
    for rep, a, b in zip(reps, starts, [*starts[1:], len(replication)]):
        _check_replication(folder, where, int(rep), requests.iloc[a:b])
    for name in requests.columns:
        if name.endswith("_ms") and _is_number(requests[name].dtype):
            values = requests[name].to_numpy(dtype=float)
            if np.any(values < 0):
                raise _refuse(
                    folder, f"{where}: column {name!r} holds negative times (row {int(np.argmax(values < 0))})"
                )


def _check_replication(folder: Path, where: str, rep: int, rows: pd.DataFrame) -> None:
    numbers = rows["request"].to_numpy()
    if not np.array_equal(numbers, np.arange(len(numbers))):
        bad = int(np.argmax(numbers != np.arange(len(numbers)))) if len(numbers) else 0
        raise _refuse(
            folder,
            f"{where}: replication {rep}: requests are not numbered 0, 1, ... in order (row {bad}: repeated or missing rows)",
        )
    arrivals = rows["arrival_ms"].to_numpy(dtype=float)
    if not np.all(np.isfinite(arrivals)):
        raise _refuse(folder, f"{where}: replication {rep}: arrival_ms is not finite everywhere")
    if len(arrivals) and (arrivals[0] < 0 or np.any(np.diff(arrivals) < 0)):
        raise _refuse(folder, f"{where}: replication {rep}: arrival_ms is negative or out of order")


def _is_number(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
