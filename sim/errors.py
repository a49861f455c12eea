"""The one family of user-facing errors: turned into a clean message at the CLI / app boundary."""


class ServesimError(ValueError):
    """A user mistake (bad scenario, bad file, bad option) with a message that names the field."""


class ScenarioError(ServesimError):
    """A scenario file that does not validate; the message lists every field path and its problem."""


class DataFileError(ServesimError):
    """A CSV / YAML data file (trace, profile, measurements) that is missing or malformed."""
