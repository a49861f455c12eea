"""Text from a scenario is shown as text in the planner (issue 23): a name, a stage name or a note that
holds Markdown is escaped wherever it is rendered, so an uploaded scenario cannot make every viewer's
browser fetch an image (a beacon, or a request into the internal network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import app  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
BEACON = "![px](http://host/md.png)"
UPLOAD = f"""
name: "{BEACON}"
description: "[click](http://host/x) <img src=http://host/i.png> # heading"
seed: 1
workload:
  arrival: {{process: poisson, rate_rps: 10}}
  requests: 2000
stages:
  - name: "![s](http://host/stage.png)"
    kind: model
    service_ms: {{dist: exponential, mean: 10}}
deployment:
  replicas: 1
"""
# Markdown that would render an image or a link: `![` / `[` not preceded by a backslash.
LIVE_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\((?!\s)")


def test_markdown_in_text_is_escaped_and_reads_as_typed():
    escaped = app.as_text(BEACON)
    assert not LIVE_LINK.search(escaped)
    assert re.sub(r"\\(.)", r"\1", escaped) == BEACON  # unescaping gives the name back, character for character


def test_a_code_block_cannot_be_closed_by_the_text_inside_it():
    block = app.as_code("bad ``` then " + BEACON)
    fence = block.strip().splitlines()[0]
    assert set(fence) == {"`"} and len(fence) > 3


def test_an_uploaded_scenario_name_is_rendered_escaped():
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.file_uploader(key="upload").upload("beacon.yaml", UPLOAD.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    title = at.title[0].value
    assert title == app.as_text(BEACON) and not LIVE_LINK.search(title)
    rendered = [title] + [
        e.value for kind in (at.caption, at.subheader, at.warning, at.error, at.markdown) for e in kind
    ]
    for text in rendered:
        assert not LIVE_LINK.search(text), text
        assert not re.search(r"(?<!\\)<img", text), text
    assert any(app.as_text("![s](http://host/stage.png)") in s.value for s in at.subheader)


def test_planner_errors_name_no_server_folder():
    at = AppTest.from_file(APP, default_timeout=300).run()
    for target in ("/etc/passwd", "traces/no-such-trace.csv"):
        upload = UPLOAD.replace("{process: poisson, rate_rps: 10}", f"{{process: trace, file: {target}}}")
        at.file_uploader(key="upload").upload("files.yaml", upload.encode(), "application/x-yaml").run()
        errors = " ".join(e.value for e in at.error)
        assert target in errors, errors
        assert str(Path(APP).parent) not in errors, errors
