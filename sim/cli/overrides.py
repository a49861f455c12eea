"""`--set PATH=VALUE`, shared by the commands that read a scenario (`run`, `size`, `advise`): one parser,
one way of applying, and every mistake one ServesimError naming `--set`, never a traceback."""

from __future__ import annotations

from sim.errors import ServesimError

SET_HELP = "override a field by dotted path, e.g. --set deployment.replicas=4 (YAML value); repeatable"


def add_set_option(parser) -> None:
    """The `--set` option, as every command spells it."""
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)


def parse_set_options(options: list[str]) -> dict:
    """`PATH=VALUE` pairs -> overrides; values are read as YAML (numbers, booleans, {inline: maps})."""
    from sim.spec.datafiles import parse_yaml

    overrides = {}
    for option in options:
        path, sep, value = option.partition("=")
        if not sep or not path.strip():
            raise ServesimError(f"--set {option!r}: expected PATH=VALUE, e.g. deployment.replicas=4")
        overrides[path.strip()] = parse_yaml(value, f"--set {path.strip()}", ServesimError)
    return overrides


def apply_set_options(scenario, options: list[str]):
    """The scenario with the `--set` overrides applied; a path or value the scenario rejects is reported
    as one `--set` line (the scenario's own message, its lines joined, says which field and why)."""
    if not options:
        return scenario
    overrides = parse_set_options(options)
    try:
        return scenario.with_overrides(overrides)
    except ServesimError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ServesimError(f"--set: {'; '.join(lines)}") from None
