"""Scenario text on the page: escaped for Markdown, fenced as code, errors shown inline."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from sim.errors import ServesimError

_MARKDOWN = re.compile(r"([\\`*_\[\]()<>#!|~$])")


def as_text(value: object) -> str:
    """Text from a scenario (its name, stage names, notes, messages embedding them) for a Markdown
    element: every Markdown and Streamlit-directive character escaped and lines joined, so it shows as
    typed and never becomes an image, a link or a heading (an uploaded name must not fetch a URL)."""
    return _MARKDOWN.sub(r"\\\1", str(value)).replace("\r", " ").replace("\n", " ")


def as_code(value: object) -> str:
    """Text in a fenced block whose fence is longer than any run of backticks in it (it cannot close it)."""
    text = str(value)
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"\n\n{fence}\n{text}\n{fence}\n"


@contextmanager
def shown_inline(what: str) -> Iterator[None]:
    """Any error in the block becomes an inline st.error saying what failed and why; the rest of the page
    still renders. Streamlit's own stop / rerun signals are BaseExceptions and pass through."""
    try:
        yield
    except ServesimError as exc:
        st.error(f"**{as_text(what)}** failed:{as_code(exc)}")
    except Exception as exc:  # a bug rather than bad input: still a message, not a traceback box
        st.error(f"**{as_text(what)}** failed with an unexpected {type(exc).__name__}: {as_text(exc)}")
