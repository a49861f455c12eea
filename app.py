"""servesim capacity planner: `streamlit run app.py`.

Widgets (sidebar knobs) → typed transforms of the chosen scenario → one pure, cached run → views drawn
from its request log. The page is built from the `ui` package: ui/choose.py (which scenario), ui/knobs.py
(the sidebar), ui/runs.py (cached runs and the context views draw from), ui/state.py (session keys and the
address bar), ui/views/ (the verdict and one module per tab).
"""

from __future__ import annotations

from sim.analysis import compare, planner  # noqa: F401  (tests replace functions of these through `app`)
from ui.runs import Context, cached_run, run_for_display, run_precise  # noqa: F401  (Context, cached_run: tests)
from ui.text import as_code, as_text, shown_inline  # noqa: F401  (as_code: tests)
from ui.views import show_views, view_llm  # noqa: F401  (view_llm: tests)
from ui.views.verdict import show_report_button, show_verdict, show_where_latency_lives  # noqa: F401
from ui.page import CSS, main  # noqa: F401  (the page itself: ui/page.py)


# Streamlit (and its AppTest) run this file as __main__; importing it (tests, benchmarks) does not start the page.
if __name__ == "__main__":
    main()
