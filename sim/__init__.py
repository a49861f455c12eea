"""servesim engine: scenario -> SimPy serving model -> request log -> summaries."""

__version__ = "0.1.0"
