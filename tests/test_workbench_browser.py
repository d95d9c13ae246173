"""End-to-end: the real workbench server (``python -m analysis serve``) on a free port and a temp
copy of the configs, driven by headless Chromium (Debian's ``chromium``) through Playwright.

Chromium is installed with apt-get when it is missing; where that is not possible as root or on
CI the tests fail, never skip (a non-root developer machine without it skips, saying so).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.core.config import REPO_ROOT
from analysis.toys.definitions import load_entries
from analysis.workbench.jobs import PACKAGE_ROOT

CHROMIUM = Path("/usr/bin/chromium")
APT = [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing (root/CI: a failure, never a skip)."""
    if CHROMIUM.exists():
        return CHROMIUM
    must = os.geteuid() == 0 or bool(os.environ.get("CI"))
    if os.geteuid() != 0:
        message = f"{CHROMIUM} is missing; install it: apt-get install chromium chromium-driver"
        pytest.fail(message) if must else pytest.skip(message)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in APT:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The serve command in a child process; yields its URL and roots."""
    root = tmp_path_factory.mktemp("workbench")
    configs = root / "configs"
    configs.mkdir()
    for name in ("default.yaml", "signals.yaml", "backgrounds.yaml", "wavelets.yaml"):
        shutil.copy(REPO_ROOT / "configs" / name, configs / name)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # fmt: skip
    command = [sys.executable, "-m", "analysis", "serve", "--port", str(port), "--config", str(configs / "default.yaml"),
               "--sessions-dir", str(root / "sessions"), "--results-dir", str(root / "results")]  # fmt: skip
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/static/style.css", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield {"url": url, "configs": configs, "sessions": root / "sessions", "results": root / "results"}
    process.terminate()
    process.wait(20)
    log.close()


@pytest.fixture(scope="module")
def browser(chromium: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server: dict):
    """A fresh page; console errors (a CSP violation, a script error) fail the test."""
    context = browser.new_context(base_url=server["url"], viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: dialog.accept())
    yield tab
    context.close()
    assert not [e for e in errors if "status of 4" not in e], errors  # expected 4xx answers aside


def _png_loaded(page, selector: str) -> None:
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.src.startsWith('data:image/png') && i.complete"
        " && i.naturalWidth > 100; }", arg=selector)  # fmt: skip


def test_create_a_signal_and_see_its_plot(page, server: dict) -> None:
    page.goto("/definitions/signals/new")
    page.fill("#f-name", "browser train")
    page.fill("#f-periods", "3")
    page.fill("#f-center", "60*n + 150")
    page.fill("#f-height", "90")
    page.fill("#f-width", "3 + n")
    page.click("#save")
    page.wait_for_url("**/definitions/signals?saved=4")
    row = page.locator('tr[data-id="4"]')
    assert "browser train" in row.inner_text()
    assert load_entries("signals", server["configs"] / "signals.yaml")[-1].center == "60*n + 150"
    row.get_by_role("link", name="Plot").click()
    page.wait_for_url("**/plot?signal_id=4")
    for selector in ("#img-clean", "#img-fluctuations", "#img-cwt"):
        _png_loaded(page, selector)
    assert page.locator('select[name="signal_id"]').input_value() == "4"
    assert "rendered in" in page.inner_text("#plot-status")
    first = page.get_attribute("#img-fluctuations", "src")
    page.fill('input[name="seed"]', "12345")  # a field change re-renders
    page.wait_for_function("() => (document.body.dataset.rendered || '').includes('seed=12345')")
    assert page.get_attribute("#img-fluctuations", "src") != first
    page.select_option('select[name="wavelet_id"]', "1")  # so does a choice
    page.wait_for_function("() => (document.body.dataset.rendered || '').includes('wavelet_id=1')")
    _png_loaded(page, "#img-cwt")


def test_an_unsafe_expression_is_shown_inline_and_nothing_is_written(page, server: dict) -> None:
    path = server["configs"] / "signals.yaml"
    before = path.read_bytes()
    page.goto("/definitions/signals/0")
    page.fill("#f-center", "__import__('os').system('touch /tmp/pwned')")
    page.click("#save")
    error = page.locator("#error-center")
    error.wait_for(state="visible")
    assert "unsafe or invalid expression" in error.inner_text()
    assert "invalid" in (page.get_attribute("#f-center", "class") or "")
    assert page.url.endswith("/definitions/signals/0")
    assert path.read_bytes() == before
    assert not Path("/tmp/pwned").exists()


def test_save_load_and_delete_a_session(page, server: dict) -> None:
    page.goto("/sessions")
    page.fill("#session-name", "e2e")
    page.click("#session-save")
    page.locator('tr[data-name="e2e"]').wait_for()
    assert (server["sessions"] / "e2e" / "session.json").is_file()
    page.goto("/definitions/wavelets")  # change something, then load the session back
    page.locator('button[data-action="duplicate"][data-id="1"]').click()
    page.locator('tr[data-id="2"]').wait_for()
    page.goto("/sessions")
    page.click('button[data-action="load"][data-name="e2e"]')
    page.wait_for_function("() => document.getElementById('session-status').textContent.includes('loaded')")
    changes = page.inner_text("#session-changes")
    assert "wavelets: removed 2" in changes and "signals: unchanged" in changes
    assert [w.id for w in load_entries("wavelets", server["configs"] / "wavelets.yaml")] == [0, 1]
    page.click('button[data-action="delete"][data-name="e2e"]')
    page.locator('tr[data-name="e2e"]').wait_for(state="detached")
    assert not (server["sessions"] / "e2e").exists()


def test_start_a_small_build_dataset_job_and_watch_it_finish(page, server: dict) -> None:
    page.goto("/jobs")
    page.fill('input[name="name"]', "e2e-job")
    for name, value in (("toys", "10"), ("train", "10"), ("test", "10"), ("signal_sizes", "0,100")):
        page.fill(f'input[name="{name}"]', value)
    page.click("#job-start")
    page.wait_for_function("() => ['finished', 'failed', 'cancelled'].includes(document.getElementById('job-state').textContent)",
                           timeout=120_000)  # fmt: skip
    assert page.inner_text("#job-state") == "finished", page.inner_text("#job-log")
    assert page.locator("#job-progress").get_attribute("value") == "100"
    assert "p-value maps" in page.inner_text("#job-log")
    assert page.locator("#job-cancel").is_disabled()
    assert (server["results"] / "e2e-job" / "dataset" / "train_backgrounds.npy").is_file()
    page.click("#job-results")
    page.wait_for_url("**/results/view/e2e-job")


def test_open_a_results_report(page, server: dict) -> None:
    from test_workbench import _fake_run  # the results directory `run` writes, made with its writers

    _fake_run(server["results"])
    page.goto("/results")
    page.click('a[href="/results/view/demo"]')
    page.wait_for_url("**/results/view/demo")
    assert page.locator("#report h2", has_text="Toys").is_visible()
    page.wait_for_function("() => [...document.querySelectorAll('#report img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#report img").count() == 1
    assert "bumphunter" in page.inner_text(".method-table")
    assert '"command": "run"' in page.inner_text("#run-json")
