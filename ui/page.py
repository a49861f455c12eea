"""The planner page: scenario, knobs, one cached run, then the verdict and the views. app.py (a checkout) and
`servesim plan` (an installed servesim, sim/cli/plan.py) both run `main`; Streamlit runs this file as
__main__ for `servesim plan`."""

from __future__ import annotations

import streamlit as st

from sim.analysis import planner
from ui.choose import choose_scenario
from ui.knobs import apply_knobs
from ui.runs import run_for_display, run_precise
from ui.state import write_address
from ui.text import as_text, shown_inline
from ui.views import show_views
from ui.views.verdict import show_report_button, show_verdict, show_where_latency_lives


# Six verdict cards share one row: a smaller value font keeps "125.4 ms" whole on a laptop screen, and a
# label or note (a CI, a distance to the budget) wraps onto a second line rather than ending in "…".
CSS = """<style>
[data-testid="stMetricValue"] { font-size: 1.9rem; }
[data-testid="stMetricLabel"] p { font-size: 0.9rem; }
[data-testid="stMetricLabel"] p, [data-testid="stMetricLabel"] div,
[data-testid="stMetricDelta"] div { white-space: normal; overflow: visible; text-overflow: clip; }
</style>"""


def main() -> None:
    st.set_page_config(page_title="servesim · capacity planner", page_icon="⏱", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    base, identity = choose_scenario()
    scenario = apply_knobs(base, identity)
    write_address(identity)
    head, button = st.columns([5, 1], vertical_alignment="bottom")
    with head:
        st.title(as_text(scenario.name))
        if scenario.description:
            st.caption(as_text(scenario.description))
    with button:
        precise = st.button(
            "Run precisely",
            help="The scenario's own length and replications: tighter CIs, seconds not milliseconds",
            key="precise",
        )
    if precise:
        with shown_inline("The precise run"):
            run_precise(scenario)
    with shown_inline(f"Simulating {scenario.name}"):
        ctx = run_for_display(scenario)
        st.caption(f"{as_text(planner.describe(ctx.scenario, ctx.size))} · seed {ctx.seed}")
        show_verdict(ctx)
        show_report_button(ctx)
        show_where_latency_lives(ctx)
        show_views(ctx)


if __name__ == "__main__":
    main()
