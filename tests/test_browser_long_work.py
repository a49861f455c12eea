"""The planner in headless Chromium (as tests/test_browser.py): a long sizing under a progress bar that the
Cancel button stops, the page saying how far it got; catalogue hardware in the Sizing tab; the pools of a
disaggregated LLM scenario (issue 21)."""

from __future__ import annotations

import time

import pytest

from tests.test_browser import (  # noqa: F401  (app_url is a fixture)
    ANSWER_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    app_url,
    assert_no_exception,
    screenshot,
    wait_until_settled,
)

pytestmark = pytest.mark.browser


def opened(browser, app_url: str, query: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1500, "height": 2200})
    page.goto(f"{app_url.rstrip('/')}/?{query}", wait_until="domcontentloaded")
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_until_settled(page)
    assert_no_exception(page)
    return page


def test_a_long_sizing_shows_progress_and_cancel_stops_it(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = opened(browser, app_url, "scenario=llm-chat-continuous&view=Sizing")
            candidates = page.locator('[data-testid="stMultiSelect"]').first
            assert "h100-80gb" in candidates.inner_text() and "l40s (estimated)" in candidates.inner_text()
            screenshot(page, tmp_path, "sizing-llm-candidates.png")
            page.get_by_role("button", name="Size", exact=True).click()
            cancel = page.get_by_role("button", name="Cancel", exact=True)
            cancel.wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.get_by_text("Probe 1:").first.wait_for(timeout=ANSWER_TIMEOUT_MS)  # it got somewhere
            started = time.perf_counter()
            cancel.click()
            stopped = page.locator('[data-testid="stAlertContentWarning"]', has_text="Sizing stopped after")
            stopped.wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_settled(page)
            print(f"\nbrowser: a sizing cancelled in {time.perf_counter() - started:.2f} s")
            assert_no_exception(page)
            assert page.locator('[data-testid="stMetric"]', has_text="Smallest replicas").count() == 0
            screenshot(page, tmp_path, "sizing-cancelled.png")
        finally:
            browser.close()


def test_the_llm_tab_of_a_disaggregated_scenario_shows_its_pools(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = opened(browser, app_url, "scenario=llm-chat-disaggregated&view=LLM%3A+TTFT+%2F+TPOT")
            page.get_by_text("KV transfer after each prefill").wait_for(timeout=ANSWER_TIMEOUT_MS)
            assert page.get_by_text("Pools", exact=False).count() >= 1
            screenshot(page, tmp_path, "llm-disaggregated-pools.png")
        finally:
            browser.close()


def test_cancel_keeps_a_comparison_stopped_until_asked_again(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = opened(browser, app_url, "scenario=llm-chat-continuous&view=Compare")
            page.get_by_text("Download the comparison report").wait_for(timeout=4 * ANSWER_TIMEOUT_MS)
            wait_until_settled(page, 4 * ANSWER_TIMEOUT_MS)
            # Four new variants, each a whole LLM trace (a few seconds apiece): long enough to cancel.
            variants = page.get_by_label("Variants")
            variants.fill("\n".join(f"r{n}: replicas={n}" for n in (7, 8, 9, 10)))
            variants.press("Control+Enter")
            cancel = page.get_by_role("button", name="Cancel", exact=True)
            cancel.wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=ANSWER_TIMEOUT_MS)
            cancel.click()
            stopped = page.locator('[data-testid="stAlertContentInfo"]', has_text="The comparison was cancelled after")
            stopped.wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_settled(page)
            assert_no_exception(page)
            assert page.get_by_text("meets the p99 SLO").count() == 0  # no table: it stayed stopped
            screenshot(page, tmp_path, "compare-cancelled.png")
            page.get_by_role("button", name="Run the comparison", exact=True).click()
            page.get_by_text("cost per 1M queries").first.wait_for(timeout=4 * ANSWER_TIMEOUT_MS)
            wait_until_settled(page, 4 * ANSWER_TIMEOUT_MS)
            assert_no_exception(page)
            assert page.get_by_role("button", name="Cancel", exact=True).count() == 0
        finally:
            browser.close()
