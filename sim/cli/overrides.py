"""`--set PATH=VALUE`, shared by the commands that read a scenario (`run`, `size`, `advise`): one parser,
one way of applying, and every mistake one ServesimError naming `--set`, never a traceback."""

from __future__ import annotations

from sim.errors import ServesimError

SET_HELP = "override a field by dotted path, e.g. --set deployment.replicas=4 (YAML value); repeatable"


def add_set_option(parser) -> None:
    """The `--set` option, as every command spells it."""
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)


def parse_set_options(options: list[str]) -> dict:
    """`PATH=VALUE` pairs -> overrides; values are read as YAML (numbers, booleans, {inline: maps}), plain
    data only (no tags, no dates, no 30-digit numbers: sim/spec/bounds.py)."""
    from sim.spec.bounds import plain_data_problems
    from sim.spec.scenario import parse_yaml_numbers

    overrides = {}
    for option in options:
        path, sep, value = option.partition("=")
        if not sep or not path.strip():
            raise ServesimError(f"--set {option[:60]!r}: expected PATH=VALUE, e.g. deployment.replicas=4")
        path = path.strip()
        parsed = parse_yaml_numbers(value, f"--set {path}", ServesimError)
        problems = list(plain_data_problems(parsed, (path,)))
        if problems:
            raise ServesimError(f"--set: {problems[0]}")
        overrides[path] = parsed
    return overrides


def apply_set_options(scenario, options: list[str]):
    """The scenario with the `--set` overrides applied; a path or value the scenario rejects is reported
    as one `--set` line (the scenario's own message, its lines joined, says which field and why; a path the
    schema has elsewhere is named, e.g. autoscaling.min_replicas -> deployment.autoscaling.min_replicas)."""
    if not options:
        return scenario
    overrides = parse_set_options(options)
    try:
        return scenario.with_overrides(overrides)
    except ServesimError as exc:
        from sim.spec.transforms import path_hint

        for path in overrides:
            hint = path_hint(path)
            if hint is not None:
                raise ServesimError(f"--set {path}: no such field (did you mean {hint}?)") from None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ServesimError(f"--set: {'; '.join(lines)}") from None
