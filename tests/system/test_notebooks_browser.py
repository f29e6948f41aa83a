"""The notebooks as a learner sees them: JupyterLab in a real (headless) browser.

Starts JupyterLab on 127.0.0.1 (a free port, a random token, no browser,
idle kernels culled and the server shut down by itself when idle), opens
each notebook in one headless Chromium page through Playwright (the first by
its URL, the next ones by JupyterLab's open command, without reloading
JupyterLab), clears its outputs,
runs all cells from the Run menu and checks the page: every code cell ran,
no cell shows an error, every plot image loaded, and notebook 01's progress
bar is a widget. It takes one small screenshot per notebook, in the test's
temporary folder, or in ``QUESTLEARN_SCREENSHOTS`` when set (``notebooks/screenshots``
refreshes the committed ones); a test run never changes the checkout.

The notebooks run on a copy in a temporary folder (JupyterLab autosaves),
in smoke mode. Skipped, with the reason, where Chromium, Playwright or
JupyterLab is missing::

    apt-get install -y chromium            # Debian/Ubuntu; no browser download needed
    python3 -m pip install -e ".[notebooks,browser]"
    python3 -m pytest tests/system/test_notebooks_browser.py -v

``QUESTLEARN_CHROMIUM`` names another Chromium binary.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
CHROMIUM = os.environ.get("QUESTLEARN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that work in containers: no sandbox (root), no GPU, no traffic anywhere but the local server.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The cell whose picture each screenshot shows (a string from its source).
SCREENSHOT_CELLS = {
    "01_split_the_data.ipynb": "progress=True",
    "02_from_the_original_recipe_to_questsequence.ipynb": "WorkerKilledSequence(SPLIT",
    "03_train_with_workers.ipynb": "history = model.fit(",
    "04_plot_the_history.ipynb": "plot_history(history",
    "05_your_own_data.ipynb": "report = evaluate(MODEL, SPLIT)",
}
NOTEBOOK_SECONDS = 900  # a hang guard: a notebook takes under a minute alone
STOPPED_SECONDS = 30  # no cell running and the rest never started for this long: Run All stopped at an error
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PROGRESS_WIDGET = ".jp-OutputArea-output .jupyter-widgets.widget-hprogress"  # tqdm.auto's bar as an ipywidget

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the notebooks extra)")
NO_CHROMIUM = ("Chromium is not installed: this test drives the system browser, which pip cannot bring "
               "(apt-get install chromium, as the README says beside the test command and .ci/run does)")
if CHROMIUM is None and os.environ.get("CI"):  # CI installs it: a missing browser there is a broken CI, not a skip
    pytest.fail(NO_CHROMIUM, pytrace=False)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM),
    pytest.mark.timeout(3600),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_settings(settings: Path) -> None:
    """JupyterLab user settings: render every cell (no windowing), fetch no news, check no updates."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 over a copy of the notebooks; yields (base URL, token, folder)."""
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns("data", "screenshots", ".ipynb_checkpoints",
                                                                    "__pycache__"))
    write_settings(root / "settings")
    port, token = free_port(), secrets.token_hex(16)
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "QUESTLEARN_SMOKE": "1", "PYTHONPATH": pythonpath,
           "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", "--ServerApp.shutdown_no_activity_timeout=300",
               "--MappingKernelManager.cull_idle_timeout=240", "--MappingKernelManager.cull_interval=30",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI images often run as root
    log = open(root / "jupyterlab.log", "w", encoding="utf-8")
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 270
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(root / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token, work
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """One headless Chromium page with a fresh profile."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()


def click_menu(page, menu: str, item: str) -> None:
    page.locator("#jp-menu-panel .lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu:not(.lm-MenuBar) .lm-Menu-item", has_text=re.compile(f"^{re.escape(item)}")).first.click()


def cell_states(page) -> dict:
    """Prompts of the visible notebook's code cells, its error outputs and its output images."""
    return page.evaluate("""panel => {
        const root = document.querySelector(panel);
        if (!root) return {prompts: [], errors: [], images: []};
        const prompts = [...root.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());
        const errors = [...root.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]')]
            .map(e => e.textContent.slice(0, 2000));
        const images = [...root.querySelectorAll('.jp-OutputArea-output img')]
            .map(img => ({loaded: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
        return {prompts, errors, images};
    }""", PANEL)


def wait_for_idle_kernel(page) -> None:
    """Wait until the notebook's kernel is idle, twice, a few seconds apart (it may be replaced at start-up)."""
    for _ in range(2):
        page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=360_000)
        time.sleep(3)


def saved_errors(page, work: Path, name: str) -> list:
    """The error outputs of notebook ``name`` as JupyterLab saves it (``ename: evalue``, traceback's last lines)."""
    path = work / name
    before = path.stat().st_mtime_ns
    click_menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + 60
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [f"cell {number}: {output['ename']}: {output['evalue']}\n"
            + re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", [])[-3:]))  # without colour codes
            for number, cell in enumerate(notebook["cells"]) for output in cell.get("outputs", [])
            if output.get("output_type") == "error"] or ["a cell stopped Run All, and the saved notebook shows no error"]


def open_notebook(page, base: str, token: str, name: str) -> None:
    """Show notebook ``name`` as the only document: the first through the page's URL, each later one through
    JupyterLab's own command in the same page (``window.jupyterapp``), as a learner opens it from the file
    browser, after saving and closing the one before (its kernel is culled when idle)."""
    if not page.url.startswith(base):
        page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    else:
        page.evaluate("""async name => {
            const app = window.jupyterapp;
            await app.commands.execute('docmanager:save');
            await app.commands.execute('application:close-all');
            await app.commands.execute('docmanager:open', {path: name});
        }""", name)
    page.wait_for_selector(f"{PANEL} .jp-CodeCell", timeout=270_000)


def run_notebook(page, base: str, token: str, name: str, work: Path) -> dict:
    open_notebook(page, base, token, name)
    wait_for_idle_kernel(page)
    click_menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(f"""() => [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputArea-prompt')]
                                     .every(e => !/\\d/.test(e.textContent))""", timeout=90_000)
    click_menu(page, "Run", "Run All Cells")
    started = time.monotonic()
    deadline = started + NOTEBOOK_SECONDS
    stopped_since = None
    while True:
        state = cell_states(page)
        numbered = all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in state["prompts"])
        busy = any("*" in prompt for prompt in state["prompts"])
        untouched = not busy and not any(re.search(r"\d", prompt) for prompt in state["prompts"])
        # Some cells ran, none runs now and the rest never started: Run All stopped (a cell raised).
        stopped = not busy and not numbered and not untouched
        stopped_since = (stopped_since or time.monotonic()) if stopped else None
        if stopped_since is not None and time.monotonic() - stopped_since > STOPPED_SECONDS:
            return {**state, "errors": state["errors"] or saved_errors(page, work, name)}
        if state["prompts"] and not busy and (numbered or state["errors"]):
            try:
                page.wait_for_function(f"""() => [...document.querySelectorAll('{PANEL} .jp-OutputArea-output img')]
                                                 .every(img => img.complete)""", timeout=90_000)
            except sync_api.TimeoutError:
                pass  # judged by the caller: an image that never loads fails the test
            return cell_states(page)
        if untouched and time.monotonic() - started > 60:
            # The request went to a kernel that was replaced while the page started: nothing ran, ask again.
            wait_for_idle_kernel(page)
            click_menu(page, "Run", "Run All Cells")
            started = time.monotonic()
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: cells still not run after {NOTEBOOK_SECONDS} s: {state['prompts']}")
        time.sleep(1)


def save_screenshot(page, name: str, folder: Path) -> Path:
    """A PNG of the cell named in SCREENSHOT_CELLS, reduced to a palette to stay small."""
    cell = page.locator(f"{PANEL} .jp-CodeCell", has_text=SCREENSHOT_CELLS[name]).first
    cell.scroll_into_view_if_needed()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name.replace(".ipynb", ".png")
    cell.screenshot(path=str(path))
    try:
        from PIL import Image  # comes with matplotlib

        with Image.open(path) as image:
            image.convert("RGB").quantize(colors=64).save(path, optimize=True)
    except ImportError:
        pass
    return path


def test_every_notebook_runs_in_jupyterlab_without_errors_and_renders_its_plots(jupyterlab, browser_page, tmp_path):
    base, token, work = jupyterlab
    screenshots = Path(os.environ.get("QUESTLEARN_SCREENSHOTS") or tmp_path / "screenshots")
    names = sorted(path.name for path in work.glob("[0-9][0-9]_*.ipynb"))
    assert names == sorted(SCREENSHOT_CELLS), f"add the new notebook to SCREENSHOT_CELLS: {names}"
    for name in names:  # in order: 02 and 03 read the split that 01 writes
        state = run_notebook(browser_page, base, token, name, work)
        assert not state["errors"], f"{name} shows an error:\n" + "\n".join(state["errors"])
        assert [int(p[1:-2]) for p in state["prompts"]] == list(range(1, len(state["prompts"]) + 1)), \
            f"{name}: not every cell ran once, in order: {state['prompts']}"
        assert all(image["loaded"] and image["width"] > 0 for image in state["images"]), f"{name}: an image did not render"
        if name.startswith("04_"):
            assert state["images"], "notebook 04 shows no plot image"
        if name.startswith("01_"):
            try:  # widget views render a moment after their cell finished
                browser_page.wait_for_selector(f"{PANEL} {PROGRESS_WIDGET}", timeout=90_000)
            except sync_api.TimeoutError:
                pytest.fail("notebook 01's split progress bar is not a Jupyter widget (is ipywidgets installed?)")
        path = save_screenshot(browser_page, name, screenshots)
        assert path.stat().st_size > 1000
