"""servesim: scenario -> serving model -> run log -> summaries, in layers (see tests/test_layers.py)."""

__version__ = "0.2.0"
