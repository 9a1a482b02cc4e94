"""JupyterLab is the daily UI (issue 13).

* notebooks under ``notebooks/`` are committed output-free (reviewed as code);
* ``make lab``'s command line: 127.0.0.1, a token, the ``qbt`` kernel, ``--allow-root`` as root;
* qbt's notes go to stdout (a note is not an error in JupyterLab), interrupts end in one line;
* a real browser (Debian's Chromium driven by Playwright) runs synth and waves in JupyterLab,
  saves, reloads, and interrupts a long cell (marked ``browser``; skipped without Chromium).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from qbt_lib import parallel, paths
from qbt_lib.lab import lab_command, lab_env, lab_url
from qbt_lib.parallel import Interrupted

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------- notebooks reviewed as code
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_output_free(path):
    """Notebooks are code: no outputs, execution counts or widget state in git (the executed
    copies live in tests/golden/). Fix with ``make strip``."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [c.get("id") for c in nb.cells if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells with outputs {dirty}: run `make strip`"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state: run `make strip`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "qbt", path.name


# --------------------------------------------------------------------------- make lab
def test_lab_command_is_private_with_a_token_and_the_qbt_kernel():
    cmd = lab_command(8123)
    assert Path(cmd[0]).name == "jupyter" and cmd[1] == "lab"
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8123" in cmd
    assert not any("token" in a.lower() for a in cmd)        # not visible in `ps`
    assert lab_env("t0k3n", {})["JUPYTER_TOKEN"] == "t0k3n"
    assert "--MappingKernelManager.default_kernel_name=qbt" in cmd
    assert f"--ServerApp.root_dir={paths.PROJ_ROOT}" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert lab_url(8123, "t0k3n") == "http://127.0.0.1:8123/lab/tree/notebooks?token=t0k3n"
    assert "--ServerApp.ip=0.0.0.0" in lab_command(8123, ip="0.0.0.0")


def test_qbt_kernel_is_registered_in_the_venv():
    out = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                         capture_output=True, text=True, check=True).stdout
    spec = json.loads(out)["kernelspecs"]["qbt"]
    assert Path(spec["resource_dir"]).is_relative_to(Path(sys.prefix))


# ------------------------------------------------------------------ notes and interrupts
def test_notes_go_to_stdout_warnings_to_stderr(capsys):
    log = logging.getLogger("qbt")
    log.info("a note (test)")
    log.warning("a warning (test)")
    out, err = capsys.readouterr()
    assert "qbt INFO: a note (test)" in out and "note" not in err
    assert "qbt WARNING: a warning (test)" in err


def _interrupt_at_3(i):
    if i == 3:
        raise KeyboardInterrupt
    return i


@pytest.mark.parametrize("backend", ["sequential", "threads"])
def test_interrupt_is_one_line(backend):
    with pytest.raises(Interrupted) as ei:
        parallel.pmap(_interrupt_at_3, range(8), backend=backend, n_jobs=2, desc="demo",
                      unit="chunk", progress=False)
    e = ei.value
    assert isinstance(e, KeyboardInterrupt)          # scripts and `except KeyboardInterrupt`
    assert e.__cause__ is None and e.__suppress_context__
    lines = e._render_traceback_()                  # what IPython / JupyterLab shows
    assert len(lines) == 1
    assert re.fullmatch(r"Interrupted: demo stopped after \d of 8 chunks; "
                        r"no partial output was kept", lines[0]), lines


def test_interrupt_inside_atomic_dir_is_one_line(tmp_path):
    with pytest.raises(Interrupted, match="building data stopped; no partial output"):
        with paths.atomic_dir(tmp_path / "data", replace=True) as tmp:
            (tmp / "part-0").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_progress_widget_becomes_a_summary_line_in_a_kernel(monkeypatch):
    """In a Jupyter kernel the bar is a widget while the work runs and is replaced by one
    text line when it ends (done or interrupted), so no widget view is left in the saved
    notebook; the interrupt shows one line and the kernel carries on."""
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import time\nfrom qbt_lib import parallel\n"
        "r = parallel.pmap(time.sleep, [0.01] * 6, backend='threads', n_jobs=2, "
        "progress=True, desc='demo', unit='chunk')",
        "def f(i):\n    if i == 3:\n        raise KeyboardInterrupt\n    return i\n"
        "parallel.pmap(f, range(6), progress=True, desc='demo', unit='chunk')",
        "print(len(r))")]
    monkeypatch.delenv("QBT_PROGRESS", raising=False)     # a user's kernel: bars on
    NotebookClient(nb, timeout=120, kernel_name="qbt", allow_errors=True).execute()
    done, stopped, after = (c.outputs for c in nb.cells)
    assert not any(WIDGET_MIME in o.get("data", {}) for c in nb.cells for o in c.outputs)
    assert re.fullmatch(r"demo: 6/6 chunks in \d+\.\d s", done[0]["data"]["text/plain"])
    assert re.fullmatch(r"demo: stopped at 3/6 chunks after \d+\.\d s",
                        stopped[0]["data"]["text/plain"])
    assert stopped[1]["output_type"] == "error" and stopped[1]["traceback"] == [
        "Interrupted: demo stopped after 3 of 6 chunks; no partial output was kept"]
    assert after[0]["text"] == "6\n"


def test_interrupting_qbt_code_in_a_kernel_is_one_line():
    """Outside a parallel map too (here the reference loop of waves.compare_impls), an
    interrupt of qbt code is one line in Jupyter; the user's own code keeps IPython's usual
    traceback, and the kernel carries on."""
    from nbclient import NotebookClient
    sigint = "threading.Timer({}, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import os, signal, threading, time\nimport numpy as np\nfrom qbt_lib import waves\n"
        "x = 100 + np.cumsum(np.random.default_rng(0).standard_normal(2000))",
        # the reference tries ~8M tuples at up_to=25: it runs until max_seconds (60 s)
        sigint.format(1.0) + "waves.compare_impls(x - 1, x + 1, int(np.argmin(x)), up_to=25, "
        "max_seconds=60)",
        sigint.format(0.5) + "time.sleep(30)",
        "print('still here')")]
    NotebookClient(nb, timeout=120, kernel_name="qbt", allow_errors=True).execute()
    _, ours, theirs, after = (c.outputs for c in nb.cells)
    assert [o["output_type"] for o in ours] == ["error"], ours
    assert ours[0]["ename"] == "Interrupted" and ours[0]["traceback"] == [
        "Interrupted: qbt_lib.waves.api.compare_impls stopped; no partial output was kept"]
    assert [o["ename"] for o in theirs if o["output_type"] == "error"] == ["KeyboardInterrupt"]
    assert len(theirs[-1]["traceback"]) > 1                  # IPython's usual traceback
    assert after[0]["text"] == "still here\n"


# ------------------------------------------------------------------------ real browser
def _chromium() -> str | None:
    for name in (os.environ.get("QBT_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHOTS = paths.OUTPUTS / "lab"

# JS run in the page: the open notebook's kernel status and its cells' outputs (the model).
STATE_JS = """() => {
  if (!window.jupyterapp || !window.jupyterapp.shell) return null;   // still starting
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const cells = [];
  const list = panel.content.model.cells;
  for (let i = 0; i < list.length; i++) {
    const c = list.get(i);
    if (c.type !== 'code') continue;
    cells.push({id: c.id, count: c.executionCount, outputs: c.outputs.toJSON()});
  }
  const ctx = panel.sessionContext;
  const k = ctx.session && ctx.session.kernel;
  return {path: panel.context.path, ready: ctx.isReady, status: k ? k.status : null,
          cells: cells};
}"""

WATCH_BAR_JS = """() => {
  window.__qbtBars = 0;
  new MutationObserver(() => {
    if (document.querySelector('.jp-OutputArea .widget-hprogress, .jp-OutputArea .widget-progress'))
      window.__qbtBars += 1;
  }).observe(document.body, {childList: true, subtree: true});
}"""


class Lab:
    """A JupyterLab server (started as ``make lab`` starts it) and a Chromium page on it."""

    def __init__(self, root: Path, page):
        self.root, self.page = root, page

    def open(self, name: str) -> None:
        self.page.goto(f"{self.base}/lab/tree/{name}?token={self.token}")
        self.wait(lambda s: s and s["path"] == name and s["ready"] and s["status"] == "idle"
                  and s["cells"], 90, f"open {name}")
        self.page.wait_for_timeout(500)
        self.page.evaluate("() => window.jupyterapp.shell.activateById("
                           "window.jupyterapp.shell.currentWidget.id)")

    def state(self):
        return self.page.evaluate(STATE_JS)

    def wait(self, ok, timeout: float, what: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                s = self.state()
            except Exception as e:       # the page is (re)loading: its context went away
                if "context" not in str(e).lower() and "navigat" not in str(e).lower():
                    raise
                s = None
            if ok(s):
                return s
            self.page.wait_for_timeout(250)
        self.shot(f"timeout-{what.replace(' ', '_')}")
        raise AssertionError(f"JupyterLab: {what} did not finish in {timeout:.0f} s: "
                             f"{json.dumps(self.state())[:3000]}")

    def command(self, cmd: str, args: dict | None = None, wait: bool = False) -> None:
        """Run a JupyterLab command; ``wait``: until it completes (Run All and run-cell
        complete when the cells do, so they are not awaited)."""
        js = ("([c, a]) => window.jupyterapp.commands.execute(c, a)" if wait else
              "([c, a]) => { window.jupyterapp.commands.execute(c, a); }")
        self.page.evaluate(js, [cmd, args or {}])

    def run_all(self, timeout: float):
        self.page.evaluate(WATCH_BAR_JS)
        self.command("notebook:run-all-cells")

        def done(s):
            if not s or s["status"] != "idle":
                return False
            if any(o["output_type"] == "error" for c in s["cells"] for o in c["outputs"]):
                return True
            return all(c["count"] is not None for c in s["cells"])
        return self.wait(done, timeout, "Run All")

    def shot(self, name: str, whole: bool = False, last: bool = False) -> None:
        """Screenshots in outputs/lab/: the window; ``last``: scrolled to the last cell;
        ``whole``: the notebook page by page (``name-p0.png``, ``name-p1.png``, ...)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        if last:
            self.page.evaluate("""() => { const nb = window.jupyterapp.shell.currentWidget
              .content; nb.widgets[nb.widgets.length - 1].node.scrollIntoView(
              {block: 'end'}); }""")
            self.page.wait_for_timeout(300)
        if not whole:
            self.page.screenshot(path=str(SHOTS / f"{name}.png"))
            return
        scroll = """(y) => { const p = window.jupyterapp.shell.currentWidget;
          const o = p.node.querySelector('.jp-WindowedPanel-outer') || p.content.node;
          if (y !== null) o.scrollTop = y; return [o.scrollHeight, o.clientHeight]; }"""
        height, page_h = self.page.evaluate(scroll, None)
        for k in range(min(12, -(-height // max(page_h - 50, 1)))):
            self.page.evaluate(scroll, k * (page_h - 50))
            self.page.wait_for_timeout(200)
            self.page.screenshot(path=str(SHOTS / f"{name}-p{k}.png"))

    def images(self) -> list[list]:
        return self.page.evaluate("""() => [...window.jupyterapp.shell.currentWidget.node
            .querySelectorAll('.jp-OutputArea-output img')]
            .map(i => [i.complete, i.naturalWidth])""")

    def widget_errors(self) -> int:
        return self.page.get_by_text("Error displaying widget").count()


def _bad_outputs(state) -> list[str]:
    bad = []
    for c in state["cells"]:
        for o in c["outputs"]:
            if o["output_type"] == "error":
                bad.append(f"cell {c['id']}: {o['ename']}: {o['evalue']}")
            elif o["output_type"] == "stream" and o["name"] == "stderr":
                bad.append(f"cell {c['id']} stderr: {''.join(o['text'])[:500]}")
    return bad


def _n_images(state) -> int:
    return sum("image/png" in o.get("data", {}) for c in state["cells"] for o in c["outputs"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    exe = _chromium()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get "
                    "when run as root: .ci/ensure-chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    root = tmp_path_factory.mktemp("lab")
    cfg = root / ".jupyter"
    # isolated settings: no user settings/workspaces; every cell rendered (no windowing),
    # so every plot is in the page
    s = cfg / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    s.mkdir(parents=True)
    (s / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    s = cfg / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    s.mkdir(parents=True)
    (s / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(cfg),
           "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    env.pop("QBT_PROGRESS", None)           # a user's kernel: progress bars on (make test sets 0)
    port, token = _free_port(), os.urandom(16).hex()
    cmd = lab_command(port, root=root, extra=["--LabApp.expose_app_in_browser=True"])
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(cmd, cwd=root, env=lab_env(token, env), stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        import urllib.request
        end = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                       timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > end:
                    pytest.fail(f"jupyter lab did not start: {(root / 'lab.log').read_text()}")
                time.sleep(0.5)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            lab = Lab(root, page)
            lab.base, lab.token = f"http://127.0.0.1:{port}", token
            yield lab
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _copy_notebook(lab: Lab, name: str, **params) -> Path:
    """notebooks/<name>.ipynb into the lab's folder with ``params`` set after its parameters
    cell (what papermill does)."""
    nb = nbformat.read(paths.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    i = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.id = "browser-params"
    nb.cells.insert(i + 1, cell)
    path = lab.root / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _run_save_reload(lab: Lab, name: str, out: Path, timeout: float, **params):
    path = _copy_notebook(lab, name, output_dir=str(out), **params)
    lab.open(path.name)
    state = lab.run_all(timeout)
    lab.shot(f"{name}-1-run", whole=True)
    assert not _bad_outputs(state), _bad_outputs(state)
    assert all(c["count"] is not None for c in state["cells"])
    assert lab.page.evaluate("() => window.__qbtBars") > 0, "no progress widget was rendered"
    imgs = lab.images()
    assert len(imgs) == _n_images(state) > 0, imgs
    assert all(done and w > 0 for done, w in imgs), f"a plot did not load: {imgs}"
    assert lab.widget_errors() == 0
    assert (out / "metrics.json").is_file()

    lab.command("docmanager:save", wait=True)
    saved = nbformat.read(path, as_version=4)
    kinds = [set(o.get("data", {})) for c in saved.cells if c.cell_type == "code"
             for o in c.outputs]
    assert not any(WIDGET_MIME in k for k in kinds), "a widget view was saved"
    text = json.dumps(saved.dict())
    assert re.search(r": \d+/\d+ chunks in \d", text), "no progress summary line saved"

    lab.page.reload()
    lab.wait(lambda s: s and s["path"] == path.name and s["cells"] and s["status"] == "idle",
             60, "reload")
    lab.page.wait_for_timeout(2000)                  # let the widget manager restore
    lab.shot(f"{name}-2-reloaded", whole=True)
    assert lab.widget_errors() == 0, "Error displaying widget after reload"
    imgs = lab.images()
    assert imgs and all(done and w > 0 for done, w in imgs), imgs
    return path


@pytest.mark.browser
def test_synth_in_jupyterlab(lab):
    out = lab.root / "out-synth"
    _run_save_reload(lab, "synth", out, 240, n=120_000, chunk_size=8192, lookback=32,
                     symbols=3, n_jobs=2)
    assert (out / "dataset").is_dir()


@pytest.mark.browser
def test_waves_in_jupyterlab(lab):
    _run_save_reload(lab, "waves", lab.root / "out-waves", 240, symbols=6, n_bars=400,
                     window=200, max_start_points=6, up_to=8, n_jobs=2,
                     reference_seconds=0.5)


@pytest.mark.browser
def test_interrupt_in_jupyterlab_is_one_line_and_keeps_the_kernel(lab):
    out = lab.root / "out-synth"
    if not (out / "metrics.json").exists():
        pytest.skip("needs test_synth_in_jupyterlab's run first")
    lab.open("synth.ipynb")                      # the kernel and its variables are still there
    before = sorted(p.name for p in (out / "dataset").rglob("*"))
    n0 = len(lab.state()["cells"])

    def add_and_run(code: str) -> None:
        lab.page.evaluate("""() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.activeCellIndex = nb.widgets.length - 1;
        }""")
        lab.command("notebook:insert-cell-below")
        lab.page.evaluate("""(code) => {
          window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel
            .setSource(code);
        }""", code)
        lab.command("notebook:run-cell")

    lab.page.evaluate(WATCH_BAR_JS)
    add_and_run("big = synth.run(**{**params, 'n': 400_000_000, 'chunk_size': 1_000_000})")
    end = time.monotonic() + 90
    while lab.page.evaluate("() => window.__qbtBars") == 0:
        assert time.monotonic() < end, "the long cell never showed its progress bar"
        lab.page.wait_for_timeout(200)
    lab.page.wait_for_timeout(1500)
    lab.shot("interrupt-1-running", last=True)
    t = time.monotonic()
    lab.command("notebook:interrupt-kernel")
    state = lab.wait(lambda s: s and s["status"] == "idle" and len(s["cells"]) == n0 + 1
                     and s["cells"][-1]["count"] is not None, 60, "interrupt")
    stopped_in = time.monotonic() - t
    lab.shot("interrupt-2-stopped", last=True)
    outs = state["cells"][-1]["outputs"]
    errors = [o for o in outs if o["output_type"] == "error"]
    assert len(errors) == 1, outs
    assert errors[0]["ename"] == "Interrupted"
    assert len(errors[0]["traceback"]) == 1, errors[0]["traceback"]
    assert re.fullmatch(r"Interrupted: synth samples stopped after \d+ of 400 chunks; "
                        r"no partial output was kept", errors[0]["traceback"][0])
    assert not [o for o in outs if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert stopped_in < 30
    # the previous dataset is intact and no temp folder is left behind
    assert sorted(p.name for p in (out / "dataset").rglob("*")) == before
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    # the kernel is still usable
    add_and_run("print(6 * 7, len(params))")
    state = lab.wait(lambda s: s and s["status"] == "idle" and len(s["cells"]) == n0 + 2
                     and s["cells"][-1]["count"] is not None, 30, "a cell after the interrupt")
    outs = state["cells"][-1]["outputs"]
    assert outs and outs[0].get("text", "").startswith("42 "), outs
    lab.shot("interrupt-3-kernel-usable", last=True)
