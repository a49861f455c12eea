"""The tabs: one module per view, each a `view_x(ctx)`; VIEWS lists them (a capability that lands adds
one module and one row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import streamlit as st

from sim.analysis import planner
from ui.runs import Context
from ui.text import shown_inline
from ui.views.advisor import view_advisor
from ui.views.autoscaling import view_autoscaling
from ui.views.compare import view_compare
from ui.views.data import view_data
from ui.views.llm import view_llm
from ui.views.sizing import view_sizing
from ui.views.stages import view_stages
from ui.views.sweeps import view_cost, view_load_curve, view_tradeoff


@dataclass(frozen=True)
class View:
    label: str
    render: Callable[[Context], None]
    available: Callable[[Context], bool] = lambda ctx: True


VIEWS = [
    View("Stage details", view_stages),
    View("Compare", view_compare),
    View("Load curve", view_load_curve),
    View("Trade-off", view_tradeoff, lambda ctx: planner.model_stage_name(ctx.scenario) is not None),
    View("Cost vs replicas", view_cost, lambda ctx: getattr(ctx.scenario.deployment, "autoscaling", None) is None),
    View("Autoscaling", view_autoscaling, lambda ctx: "autoscaling" in ctx.summary),
    View("LLM: TTFT / TPOT", view_llm, lambda ctx: "llm" in ctx.summary),
    View("Sizing", view_sizing),
    View("Advisor", view_advisor),
    View("Data & downloads", view_data),
]


def show_views(ctx: Context) -> None:
    views = [view for view in VIEWS if view.available(ctx)]
    # Lazy tabs: only the open one computes (a sweep takes seconds; the verdict above must not wait for it).
    tabs = st.tabs([view.label for view in views], key="view", on_change="rerun")
    for tab, view in zip(tabs, views):
        if tab.open:
            with tab, shown_inline(view.label):
                view.render(ctx)
