"""The course in JupyterLab, in a real browser: every notebook renders, 00 and 02 run from the UI.

JupyterLab starts as `make lab` does (tests/lab_server.py), on a temporary copy of notebooks/ so
that nothing is ever saved over the real ones. Playwright drives the system's Chromium (Debian's
`chromium` package); it never downloads a browser. Without Chromium the tests are skipped, and
the skip says how to install it; `.ci/run` sets MMCOURSE_REQUIRE_BROWSER=1, which turns the skip
into a failure. Screenshots land in each test's pytest temporary folder.
"""

import importlib.util
import json
import os
import shutil

import pytest

from mmcourse.paths import NOTEBOOKS_DIR
from tests.lab_server import running_lab

pytestmark = pytest.mark.slow

RUN_IN_BROWSER = ["00_environment_setup.ipynb", "02_cnn_math.ipynb"]  # also checked for rendering
ONLY_OPENED = sorted({path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")} - set(RUN_IN_BROWSER))
RUN_TIMEOUT_MS = 300_000  # notebook 00 runs in about 50 s on 2 cores
# Headless, and nothing that reaches for the network (this machine has none).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a quiet, complete page: no news pop-up, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show
# The status bar names the current document and its kernel's state: "Python 3 (ipykernel) | Idle".
READY = f"""([name, cells]) => {{
    const status = document.querySelector("#jp-main-statusbar")?.innerText ?? "";
    return status.includes(name) && status.includes("| Idle")
        && document.querySelectorAll("{PANEL} .jp-Cell").length === cells;
}}"""
# The notebook model as nbformat JSON; `--LabApp.expose_app_in_browser` makes the app reachable.
NOTEBOOK_JSON = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON()"
# True once Run All is over: every code cell has an execution count, or one failed.
RUN_FINISHED = f"""() => {{
    const cells = ({NOTEBOOK_JSON})().cells.filter(cell => cell.cell_type === "code");
    const failed = cells.some(cell => cell.outputs.some(out => out.output_type === "error"));
    const idle = document.querySelector("#jp-main-statusbar").innerText.includes("| Idle");
    return idle && (failed || cells.every(cell => cell.execution_count !== null));
}}"""
# The check() feedback: Markdown with a coloured span (mmcourse.exercises.Feedback).
FEEDBACK = f'{PANEL} .jp-OutputArea-output[data-mime-type="text/markdown"] span[style*="color"]'


def require_browser():
    """The Chromium executable; skips (or fails, with MMCOURSE_REQUIRE_BROWSER=1) without one."""
    missing = []
    chromium = os.environ.get("MMCOURSE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        missing.append("Chromium (Debian: sudo apt-get install chromium; or set "
                       "MMCOURSE_CHROMIUM to a Chromium or Chrome executable; docs/SETUP.md)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright (.venv/bin/python -m pip install -r requirements.txt)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("MMCOURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (MMCOURSE_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)
    return chromium


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab page, served from a copy of notebooks/, and the page's script errors."""
    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    workdir = tmp_path_factory.mktemp("lab_browser")
    root = workdir / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for plugin, settings in LAB_SETTINGS.items():
        path = workdir / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings), encoding="utf-8")
    with running_lab(root, workdir, ["--LabApp.expose_app_in_browser=True"]) as (base, token):
        with sync_playwright() as playwright:  # on exit, ends the browser if still running
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(60_000)
                js_errors = []
                page.on("pageerror", lambda error: js_errors.append(str(error)))
                page.goto(f"{base}/lab?token={token}")
                yield page, root, js_errors
            finally:
                browser.close()


def open_notebook(lab, name):
    """Open `name` from the file browser; its cells once all are shown and its kernel is idle."""
    page, root, js_errors = lab
    js_errors.clear()
    cells = json.loads((root / name).read_text(encoding="utf-8"))["cells"]
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    page.wait_for_function(READY, arg=[name, len(cells)])
    return cells


def close_and_shut_down(page):
    """File > Close and Shut Down Notebook, without saving (the notebooks are copies anyway)."""
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.locator("li[data-command='filemenu:close-and-cleanup']").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(PANEL).wait_for(state="detached")


def feedback_colours(cells):
    """The colours of check()'s feedback stored in `cells`, as CSS rgb() strings."""
    colours = []
    for output in (output for cell in cells for output in cell.get("outputs", [])):
        markdown = output.get("data", {}).get("text/markdown", "")
        markdown = "".join(markdown) if isinstance(markdown, list) else markdown
        if markdown.startswith('<span style="color:#'):
            red, green, blue = bytes.fromhex(markdown.split("#", 1)[1][:6])
            colours.append(f"rgb({red}, {green}, {blue})")
    return colours


def assert_renders(lab, cells):
    """No dialog or script error, every Markdown cell rendered, every figure loaded, and the
    exercise feedback shown in the colours stored in the notebook (which nbval checks)."""
    page, _, js_errors = lab
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").all_inner_texts()
    assert not js_errors
    status = page.locator("#jp-main-statusbar").inner_text()
    assert "Error" not in status and "No Kernel" not in status, status
    markdown = sum(cell["cell_type"] == "markdown" for cell in cells)
    assert page.locator(f"{PANEL} .jp-MarkdownCell.jp-mod-rendered").count() == markdown
    broken = page.locator(f"{PANEL} img").evaluate_all(
        "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).length")
    assert broken == 0, f"{broken} image(s) did not load"
    shown = page.locator(FEEDBACK).evaluate_all("els => els.map(e => getComputedStyle(e).color)")
    assert shown == feedback_colours(cells)


def code_cells(page):
    """The code cells of the notebook on show, as nbformat JSON read from JupyterLab's model."""
    return [cell for cell in page.evaluate(NOTEBOOK_JSON)["cells"] if cell["cell_type"] == "code"]


def screenshot(page, path):
    """Scroll to the first exercise feedback, if any, and save the view as a PNG."""
    if page.locator(FEEDBACK).count():
        page.locator(FEEDBACK).first.scroll_into_view_if_needed()
    page.screenshot(path=path)


@pytest.mark.parametrize("name", ONLY_OPENED)
def test_notebook_renders_in_jupyterlab(lab, name, tmp_path):
    page = lab[0]
    cells = open_notebook(lab, name)
    try:
        assert_renders(lab, cells)
        screenshot(page, tmp_path / f"{name}.png")
    finally:
        close_and_shut_down(page)


@pytest.mark.parametrize("name", RUN_IN_BROWSER)
def test_run_all_cells_from_the_menu(lab, name, tmp_path):
    page = lab[0]
    cells = open_notebook(lab, name)
    try:
        assert feedback_colours(cells), f"{name} stores no exercise feedback"
        page.get_by_role("menuitem", name="Edit", exact=True).click()
        page.locator("li[data-command='editmenu:clear-all']").click()
        assert not any(cell["outputs"] or cell["execution_count"] for cell in code_cells(page))
        assert page.locator(FEEDBACK).count() == 0
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator("li[data-command='runmenu:run-all']").click()
        page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS, polling=1000)

        ran = code_cells(page)
        errors = [out for cell in ran for out in cell["outputs"] if out["output_type"] == "error"]
        assert not errors, [f"{out['ename']}: {out['evalue']}" for out in errors]
        # The kernel was new: Run All numbers the cells 1, 2, 3... in order.
        assert [cell["execution_count"] for cell in ran] == list(range(1, len(ran) + 1))
        assert_renders(lab, cells)
        screenshot(page, tmp_path / f"{name}.png")
    finally:
        close_and_shut_down(page)
