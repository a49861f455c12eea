"""The planner in a real browser: `streamlit run app.py` on a loopback port, driven by headless Chromium
through Playwright. Loads, waits for the verdict, changes a knob, sees the numbers change, screenshots.

Needs Debian's chromium at /usr/bin/chromium (CI: `apt-get install -y chromium chromium-driver`) and the
`playwright` Python package; never `playwright install` (it downloads a browser).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60
ANSWER_TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (CI installs it: apt-get install -y chromium chromium-driver)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             # No file watcher: a source file saved during the test would show a "File change" prompt in
             # the status widget, which wait_until_idle reads as "still running".
             "--server.fileWatcherType", "none"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode}:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"streamlit did not listen on port {port} within {START_TIMEOUT_S} s:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def metric_value(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]', has_text=label).first
    return card.locator('[data-testid="stMetricValue"]').inner_text()


def first_number(text: str) -> float:
    return float(re.search(r"[\d,]+\.?\d*", text).group(0).replace(",", ""))


def assert_no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, f"the page shows a Streamlit exception: {boxes.first.inner_text()}"


def wait_until_idle(page) -> None:
    """Streamlit shows a 'running' status widget while the script runs; wait until it is gone."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=ANSWER_TIMEOUT_MS)


def test_planner_answers_and_follows_a_knob(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # Tall enough that the tab content is in the screenshot (Streamlit scrolls inside its own container).
            page = browser.new_page(viewport={"width": 1500, "height": 2200})
            page.goto(app_url, wait_until="domcontentloaded")
            page.locator('[data-testid="stMetric"]', has_text="p99 latency").wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_idle(page)
            assert_no_exception(page)
            before_p99 = first_number(metric_value(page, "p99 latency"))
            before_cost = first_number(metric_value(page, "$ per 1M queries"))
            page.screenshot(path=str(tmp_path / "planner-default.png"), full_page=True)

            # Double the replicas: the price per query doubles (same throughput), the tail does not grow.
            replicas = page.get_by_label("Replicas", exact=True)
            current = int(replicas.input_value())
            replicas.fill(str(current * 2))
            started = time.perf_counter()
            replicas.press("Enter")
            page.wait_for_function(
                """(before) => {
                    const card = [...document.querySelectorAll('[data-testid="stMetric"]')]
                        .find(c => c.innerText.includes('$ per 1M queries'));
                    return card && !card.innerText.includes(before);
                }""",
                arg=metric_value(page, "$ per 1M queries"), timeout=ANSWER_TIMEOUT_MS)
            answer_s = time.perf_counter() - started
            print(f"\nbrowser: knob change to updated verdict in {answer_s:.2f} s")
            wait_until_idle(page)
            assert_no_exception(page)
            after_p99 = first_number(metric_value(page, "p99 latency"))
            after_cost = first_number(metric_value(page, "$ per 1M queries"))
            assert after_cost == pytest.approx(2 * before_cost, rel=0.02)
            assert after_p99 <= before_p99
            page.screenshot(path=str(tmp_path / "planner-doubled.png"), full_page=True)
            assert (tmp_path / "planner-doubled.png").stat().st_size > 10_000

            # The compare tab runs its variants and renders the table with a winner per metric.
            page.get_by_role("tab", name="Compare").click()
            page.locator("table", has_text="p99 latency (ms)").wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_idle(page)
            assert_no_exception(page)
            assert "★" in page.locator("table", has_text="p99 latency (ms)").inner_text()
            page.screenshot(path=str(tmp_path / "planner-compare.png"), full_page=True)

            shots = os.environ.get("SERVESIM_SCREENSHOTS")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                for name in ("planner-default.png", "planner-doubled.png", "planner-compare.png"):
                    (Path(shots) / name).write_bytes((tmp_path / name).read_bytes())
        finally:
            browser.close()


def test_switching_scenario_resets_the_knobs_in_the_browser(app_url):
    """Issue 12: a knob edited on one scenario must not follow the planner to the next one — neither in
    what the page shows after the switch nor in what the next click sends back."""
    from playwright.sync_api import sync_playwright

    from sim.analysis import planner
    from sim.spec.scenario import load_scenario

    target = load_scenario(ROOT / "scenarios" / "search-ranker.yaml")
    expected_p99 = f"{planner.run(target, planner.QUICK, seed=target.seed).summary['latency_ms']['p99']:,.1f} ms"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2200})
            page.goto(app_url, wait_until="domcontentloaded")
            page.locator('[data-testid="stMetric"]', has_text="p99 latency").wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_idle(page)
            replicas = page.get_by_label("Replicas", exact=True)
            replicas.fill(str(int(replicas.input_value()) + 5))
            replicas.press("Enter")
            page.wait_for_timeout(500)
            wait_until_idle(page)

            page.get_by_role("combobox", name="Shipped scenario").click()
            page.get_by_role("option", name="search-ranker", exact=True).click()
            page.locator("h1", has_text="search-ranker").wait_for(timeout=ANSWER_TIMEOUT_MS)
            wait_until_idle(page)
            assert_no_exception(page)
            assert int(page.get_by_label("Replicas", exact=True).input_value()) == target.deployment.replicas
            assert float(page.get_by_label("p99 SLO (ms)", exact=True).input_value()) == target.slo.p99_ms

            # The next click (another tab) reruns the page with what the browser holds.
            page.get_by_role("tab", name="Data & downloads").click()
            page.wait_for_timeout(500)
            wait_until_idle(page)
            assert_no_exception(page)
            assert int(page.get_by_label("Replicas", exact=True).input_value()) == target.deployment.replicas
            assert metric_value(page, "p99 latency") == expected_p99
        finally:
            browser.close()
