"""Every error in the planner is an inline message (issue 12): a bad upload of any kind, or a scenario
that validates but cannot run, shows an st.error naming what is wrong, never Streamlit's exception box."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT_S = 300

VALID = """
name: ok
seed: 1
workload:
  arrival: {process: poisson, rate_rps: 10}
  requests: 2000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
deployment:
  replicas: 1
"""

# (file name, bytes, a phrase the inline error must contain)
BAD_UPLOADS = [
    ("syntax.yaml", b"name: [unclosed\nseed: 1\n", "syntax.yaml"),
    ("list.yaml", b"- a\n- b\n", "list.yaml"),
    ("scalar.yaml", b"just some text\n", "scalar.yaml"),
    ("empty.yaml", b"", "empty.yaml"),
    ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "binary.yaml"),
    (
        "profile.yaml",
        VALID.replace("service_ms: {dist: exponential, mean: 10}", "profile: models/no-such-profile.yaml").encode(),
        "no-such-profile",
    ),
    (
        "trace.yaml",
        VALID.replace("{process: poisson, rate_rps: 10}", "{process: trace, file: traces/no-such-trace.csv}").encode(),
        "no-such-trace",
    ),
    ("kind.yaml", VALID.replace("kind: model", "kind: modle").encode(), "kind"),
    ("negative.yaml", VALID.replace("rate_rps: 10", "rate_rps: -10").encode(), "rate_rps"),
    ("huge.yaml", b"#" * 1_000_001, "1,000,000 bytes"),
]


def test_every_bad_upload_is_an_inline_error_and_the_page_still_answers():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    for name, data, phrase in BAD_UPLOADS:
        at.file_uploader(key="upload").upload(name, data, "application/x-yaml").run()
        assert not at.exception, (name, [e.value for e in at.exception])
        errors = " ".join(e.value for e in at.error)
        assert name in errors and phrase in errors, (name, errors)
        assert "Traceback" not in errors
        assert at.title[0].value == "vision-a100", name  # the shipped scenario still answers


def script_with_failing(target: str, error: str) -> str:
    """The planner page with `target` (an attribute path under `app`) replaced by a function raising `error`."""
    root = str(Path(APP).parent)
    module, _, name = target.rpartition(".")
    return f"""
import sys
sys.path.insert(0, {root!r})
import app
from sim.errors import ServesimError

def failing(*args, **kwargs):
    raise {error}

owner = eval({module!r}, {{"app": app}})
original = getattr(owner, {name!r})
app.cached_run.clear()
setattr(owner, {name!r}, failing)
try:
    app.main()
finally:
    setattr(owner, {name!r}, original)  # the modules are shared with the rest of the test session
    app.cached_run.clear()
"""


@pytest.mark.parametrize("error", ["RuntimeError('engine exploded')", "ServesimError('engine exploded')"])
def test_a_failing_run_is_an_inline_error(error):
    at = AppTest.from_string(script_with_failing("app.planner.run", error), default_timeout=TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "engine exploded" in errors and "vision-a100" in errors, errors
    assert at.title[0].value == "vision-a100"  # the page around it still renders


def test_a_failing_view_is_an_inline_error_in_its_tab():
    at = AppTest.from_string(
        script_with_failing("app.compare.run_comparison", "ValueError('compare exploded')"), default_timeout=TIMEOUT_S
    )
    at.session_state["view"] = "Compare"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "Compare" in errors and "compare exploded" in errors, errors
    assert any(m.label.startswith("p99 latency") for m in at.metric)  # the verdict above still shows
