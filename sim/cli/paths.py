"""Command-line paths and numbers checked before any work: an input that is a readable regular file of a
sane size, an output whose folder exists and is writable with a known suffix, a finite positive number.

Each check raises a ServesimError naming the option, so `/dev/zero`, a directory given as `--log`, or a
300-character file name become one clear line and exit code 2, not a hang or a traceback.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from sim.errors import ServesimError
from sim.spec.datafiles import shown

MAX_INPUT_BYTES = 200_000_000
MAX_NAME_CHARS = 255  # one path component, as most file systems allow
MAX_PATH_CHARS = 4096
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
MAX_WORKERS = 256
_SCHEDULER = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[A-Za-z0-9.\-\[\]:_]+(:\d{1,5})?/?$")


def _check_name(path: Path, option: str) -> None:
    text = str(path)
    if not text or "\x00" in text:
        raise ServesimError(f"{option}: empty file name or a NUL byte in it")
    if len(text) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in path.parts):
        raise ServesimError(f"{option}: file name too long (at most {MAX_NAME_CHARS} characters per part)")


def input_file(path: str | Path, option: str, max_bytes: int = MAX_INPUT_BYTES, suffixes: tuple[str, ...] = ()) -> Path:
    """An existing regular file (not a device, pipe or folder) of at most `max_bytes`."""
    path = Path(path)
    _check_name(path, option)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ServesimError(f"{option} {shown(path)}: expected a {' or '.join(suffixes)} file")
    try:
        stat = path.stat()
    except FileNotFoundError:
        hint = " (`servesim scenarios` lists the shipped ones, which run by name)" if option == "scenario" else ""
        raise ServesimError(f"{option}: file not found: {shown(path)}{hint}") from None
    except OSError as exc:
        raise ServesimError(f"{option}: cannot read {shown(path)} ({exc.strerror or exc})") from None
    if not path.is_file():
        raise ServesimError(f"{option}: {shown(path)} is not a regular file")
    if stat.st_size > max_bytes:
        raise ServesimError(f"{option}: {shown(path)} is {stat.st_size} bytes, above the limit of {max_bytes}")
    if not os.access(path, os.R_OK):
        raise ServesimError(f"{option}: {shown(path)} is not readable")
    return path


def output_file(path: str | Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """A file to write: a known suffix, not a folder, in an existing writable folder."""
    path = Path(path)
    _check_name(path, option)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ServesimError(f"{option} {shown(path)}: use a {' or '.join(suffixes)} file name")
    if path.is_dir():
        raise ServesimError(f"{option} {shown(path)}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise ServesimError(f"{option} {shown(path)}: exists and is not a regular file")
    folder = path.parent
    if not folder.is_dir():
        raise ServesimError(f"{option} {shown(path)}: folder {shown(folder)} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ServesimError(f"{option} {shown(path)}: not writable")
    return path


def output_dir(path: str | Path, option: str) -> Path:
    """A folder to write into (created later by the command): an existing file there is refused, and the
    folder, or the nearest existing folder above it, must be writable. Nothing is created here."""
    path = Path(path)
    _check_name(path, option)
    if path.exists() and not path.is_dir():
        raise ServesimError(f"{option} {shown(path)}: exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ServesimError(f"{option} {shown(path)}: {shown(existing)} is not a folder")
    if not os.access(existing, os.W_OK):
        raise ServesimError(f"{option} {shown(path)}: folder {shown(existing)} is not writable")
    return path


def positive_number(value: float | None, option: str, limit: float = 1e12) -> float | None:
    """None stays None; otherwise a finite number in (0, limit]."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= limit:
        raise ServesimError(f"{option}: {value!r} must be a finite number above 0 and at most {limit:g}")
    return value


def finite_number(value: float | None, option: str) -> float | None:
    """None stays None; otherwise not infinite and not NaN."""
    if value is not None and not math.isfinite(value):
        raise ServesimError(f"{option}: {value!r} must be a finite number")
    return value


def count(value: int | None, option: str, low: int = 1, high: int = 1_000_000_000) -> int | None:
    """None stays None; otherwise a whole number in [low, high]."""
    if value is None:
        return None
    if not low <= value <= high:
        raise ServesimError(f"{option}: {value} must be from {low} to {high}")
    return value


def scheduler_address(address: str | None, option: str = "--scheduler") -> str | None:
    """A Dask scheduler address such as tcp://HOST:8786."""
    if address is None:
        return None
    if not _SCHEDULER.match(address):
        raise ServesimError(f"{option}: {address!r} is not a scheduler address (expected tcp://HOST:PORT)")
    port = address.rstrip("/").rsplit(":", 1)[-1]
    if port.isdigit() and not 0 < int(port) < 65536:
        raise ServesimError(f"{option}: port {port} is outside 1..65535")
    return address


def check_run_args(args) -> None:
    """Every path and number of `servesim run`, before the scenario is read."""
    input_file(args.scenario, "scenario", max_bytes=1_000_000)
    if args.log is not None:
        output_dir(args.log, "--log")  # a folder: the run log's parquet frames, the scenario, the settings
    if args.timeline is not None:
        output_file(args.timeline, "--timeline", PLOT_SUFFIXES)
    positive_number(args.window_s, "--window-s", limit=1e9)
    count(args.workers, "--workers", 1, MAX_WORKERS)


def check_size_args(args) -> None:
    """`servesim size`: scenario, explicit SLOs that are finite positive numbers, the output folder."""
    input_file(args.scenario, "scenario", max_bytes=1_000_000)
    positive_number(args.slo_p99_ms, "--slo-p99-ms", limit=1e9)
    positive_number(args.slo_p95_ms, "--slo-p95-ms", limit=1e9)
    positive_number(args.slo_p50_ms, "--slo-p50-ms", limit=1e9)
    positive_number(args.ttft_p99_ms, "--ttft-p99-ms", limit=1e9)
    positive_number(args.tpot_p99_ms, "--tpot-p99-ms", limit=1e9)
    if args.every_window_s != 0:  # 0 turns the per-window check off
        positive_number(args.every_window_s, "--every-window-s", limit=1e10)
    count(args.replications, "--replications", 2, 1000)
    count(args.workers, "--workers", 1, MAX_WORKERS)
    output_dir(args.out, "--out")


def check_compare_args(args) -> None:
    input_file(args.scenario, "scenario", max_bytes=1_000_000)
    count(args.load_points, "--load-points", 0, 100)
    output_dir(args.out, "--out")


def check_advise_args(args) -> None:
    input_file(args.scenario, "scenario", max_bytes=1_000_000)
    # Signs and ranges are checked by advise itself; here only what it would take silently.
    for option, value in (
        ("--slo-p99-ms", args.slo_p99_ms),
        ("--slo-p95-ms", args.slo_p95_ms),
        ("--budget-usd-per-1m", args.budget_usd_per_1m),
        ("--cache-hit-rate", args.cache_hit_rate),
    ):
        finite_number(value, option)
    if args.out is not None:
        output_dir(args.out, "--out")


def check_sweep_args(args) -> None:
    input_file(args.sweep, "sweep", max_bytes=1_000_000)
    scheduler_address(args.scheduler)
    if args.out is not None:
        output_dir(args.out, "--out")
