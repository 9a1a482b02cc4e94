"""The report: metrics.json, the summary rows (every workload, figures traced to their
source), the rendered index.html (checked in a real headless Chromium), the README block."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qbt_lib import paths, report
from qbt_lib.bench import WORKLOADS, load_results

GOLDEN_PROFILING = paths.GOLDEN_DIR / "profiling.ipynb"
ASV_FIXTURES = paths.PROJ_ROOT / "tests" / "fixtures" / "asv-results"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


@pytest.fixture
def outputs(tmp_path, bench_fixtures, monkeypatch):
    """A fake ``outputs/`` with the fixture bench JSONs, a synth metrics.json, and the golden
    profiling notebook as if `make report` had executed it (and no committed GPU runs: only
    the fixture's GPU JSON)."""
    monkeypatch.setattr(paths, "GPU_RESULTS", tmp_path / "no-committed-gpu-runs")
    out = tmp_path / "outputs"
    shutil.copytree(bench_fixtures, out / "bench")
    report.write_metrics(out / "synth", "synth", {"n": 10},
                         headline={"throughput": "5M samples/s (numba)", "gpu": ""},
                         wall_seconds=12.5)
    if GOLDEN_PROFILING.exists():
        (out / "profiling").mkdir()
        shutil.copy(GOLDEN_PROFILING, out / "profiling" / "profiling.ipynb")
    return out


def test_write_and_read_metrics(tmp_path):
    p = report.write_metrics(tmp_path / "wl", "synth", {"n": 5}, headline={"throughput": "x"},
                             wall_seconds=1.5)
    m = report.read_metrics("wl", tmp_path)
    assert p.name == "metrics.json" and m["params"] == {"n": 5}
    assert m["machine"]["cores"] >= 1 and "numpy" in m["versions"]
    assert not list((tmp_path / "wl").glob("*.tmp"))
    assert report.read_metrics("nothing", tmp_path) is None


def test_summary_rows_cover_every_workload_and_name_sources(outputs, tmp_path):
    # without recorded asv history (the committed benchmarks/results are test_history's)
    no_asv = tmp_path / "no-asv-results"
    rows = {r["workload"]: r for r in report.summary_rows(outputs, results_dir=no_asv)}
    assert list(rows) == list(WORKLOADS)  # never skipped, built or not
    s = rows["synth"]
    # the bench JSON's figure first (traceable to it); the notebook's own figure beside it
    # the throughput of the headline ratio's case (one named case, never the maximum)
    assert s["headline"]["throughput"] == "4.17M samples/s (numba materialize n=10M)"
    assert s["source"]["throughput"] == "synth.json"
    assert s["notebook_headline"]["throughput"] == "5M samples/s (numba)"
    assert s["source"]["speedup_vs_reference"] == "synth.json"
    assert s["headline"]["gpu"].startswith("800M samples/s on fixture GPU")
    assert s["source"]["gpu"] == "synth-h100.json"
    assert s["wall_seconds"] == 12.5
    w = rows["waves"]
    assert w["metrics"] is None and w["source"]["throughput"] == "waves.json"
    # without a bench JSON, the notebook's metrics.json is the source
    (outputs / "bench" / "synth.json").unlink()
    (outputs / "bench" / "synth-h100.json").unlink()
    s = {r["workload"]: r for r in report.summary_rows(outputs, results_dir=no_asv)}["synth"]
    assert s["headline"]["throughput"] == "5M samples/s (numba)"
    assert s["source"]["throughput"] == "metrics.json" and s["headline"]["gpu"] == "-"
    for r in rows.values():
        assert r["state"] in ("notebook not built yet", "not executed", "executed", "failed")


def test_summary_rows_without_any_result(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "GPU_RESULTS", tmp_path / "no-committed-gpu-runs")
    rows = report.summary_rows(tmp_path / "empty", results_dir=tmp_path / "no-asv-results")
    assert [r["workload"] for r in rows] == list(WORKLOADS)
    assert all(r["headline"] == {k: "-" for k in report.HEADLINE_KEYS} for r in rows)


def test_notebook_failed_detection(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "error"}]}],
          "metadata": {}}
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(nb))
    assert report.notebook_failed(p)
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "text": "ok"}]
    p.write_text(json.dumps(nb))
    assert not report.notebook_failed(p)


def test_run_notebooks_goes_on_after_a_failure(monkeypatch):
    ran = []

    def fake_execute(name, size="small", out=None, extra=None):
        ran.append((name, size))
        if name == "synth":
            raise RuntimeError("cell 3 failed")

    monkeypatch.setattr(report.notebooks, "execute", fake_execute)
    status = report.run_notebooks(["synth", "waves", "profiling"])
    assert status == {"synth": "failed", "waves": "ok", "profiling": "ok"}
    assert ("waves", "small") in ran and ("profiling", report.default_size("profiling")) in ran


def test_render_index(outputs, tmp_path):
    out = tmp_path / "report"
    index = report.render(out, outputs)
    page = index.read_text()
    body = page.split('<table id="summary">', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") == 1 + len(WORKLOADS)
    for wl in WORKLOADS:
        assert f"<td>{wl}" in body or f">{wl}</a>" in body
    # every JSON used is copied next to the page and linked with its machine
    for name in ("synth.json", "synth-h100.json", "waves.json", "synth.metrics.json"):
        assert (out / "data" / name).exists()
        assert f'href="data/{name}"' in page
    assert "fixture CPU (test data, not a measurement)" in page
    assert 'id="bench-synth.json"' in page
    if GOLDEN_PROFILING.exists():
        assert (out / "profiling.html").exists()
        assert 'id="nb-profiling"' in page and "data:image/png;base64" in page
        # inputs hidden: no code cell source in the page
        assert "prof.ProfilingConfig.from_params(" not in page


def test_render_reads_the_asv_results_once(outputs, tmp_path, monkeypatch):
    """The summary rows and the history section share one read of the asv results."""
    from qbt_lib.bench import history
    read = []
    real = history.read_results
    monkeypatch.setattr(history, "read_results", lambda p: read.append(p) or real(p))
    page = report.render(tmp_path / "report", outputs, results_dir=ASV_FIXTURES,
                         html_dir=tmp_path / "no-html").read_text()
    assert len(read) == 1 and 'id="regressions"' in page


def test_readme_block_is_generated(tmp_path, bench_fixtures):
    docs = report.bench_docs([bench_fixtures])
    md = report.readme_results(docs)
    assert "| synth | 4.17M samples/s" in md
    assert "`synth-h100.json`" in md
    assert "| synth | numba vs reference | 1,667x | ≥ 30x | ok | `synth.json` |" in md
    assert "cupy vs numba" not in md.split("Targets")[1]  # no target: only in the JSON
    for wl in WORKLOADS:
        assert f"| {wl} |" in md
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{report.RESULTS_START}\nold stuff\n{report.RESULTS_END}\nafter\n")
    report.write_readme(readme, docs)
    text = readme.read_text()
    assert "old stuff" not in text and text.startswith("# x\nbefore\n")
    assert text.endswith(f"{report.RESULTS_END}\nafter\n") and "| waves |" in text
    report.write_readme(readme, [])  # idempotent markers; no JSON -> a line per workload
    assert readme.read_text().count(report.RESULTS_START) == 1
    assert "| marketsim | no bench JSON yet |" in readme.read_text()
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:start"):
        report.write_readme(readme, docs)


def test_a_json_is_labelled_by_its_size_not_the_quick_flag(tmp_path, bench_fixtures):
    """``quick`` is true for every reduced size: a tiny run reads "tiny", not "quick"."""
    from qbt_lib.report import page
    docs = [dict(d, size="tiny", quick=True) if d["workload"] == "synth" and
            not d.get("tag") else d for d in report.bench_docs([bench_fixtures])]
    md = report.readme_results(docs)
    row = next(ln for ln in md.splitlines() if ln.startswith("| synth |"))
    assert "`synth.json` (" in row and ", tiny)" in row and ", quick)" not in row
    section = page._bench_section([d for d in docs if d["workload"] == "synth"], tmp_path)
    assert "; tiny size;" in section and "; full size;" in section  # the GPU run: full
    assert "; quick size;" not in section


def test_repo_readme_has_the_results_markers():
    text = (paths.PROJ_ROOT / "README.md").read_text()
    assert text.count(report.RESULTS_START) == 1 and text.count(report.RESULTS_END) == 1


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install -y chromium)")
@pytest.mark.skipif(not GOLDEN_PROFILING.exists(), reason="golden profiling notebook missing")
def test_index_in_headless_chromium(outputs, tmp_path):
    """Load the rendered page in a real browser and check what it shows."""
    out = tmp_path / "report"
    index = report.render(out, outputs)
    chrome = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=3000"]
    dom = subprocess.run([chrome, *flags, "--dump-dom", index.as_uri()], capture_output=True,
                         text=True, timeout=60).stdout
    assert dom.strip(), "chromium returned no DOM"
    summary = dom.split('id="summary"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr>", summary)) == 1 + len(WORKLOADS)
    # the profiling notebook is in the page: its plots (PNG images) and its tables
    section = dom.split('id="nb-profiling"', 1)[1]
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64', section)) >= 10
    assert section.count('class="dataframe"') >= 10
    assert "Time vs problem size" in section and "GPU vs CPU" in section
    shot = tmp_path / "shot.png"
    subprocess.run([chrome, *flags, "--window-size=1400,2000", f"--screenshot={shot}",
                    index.as_uri()], capture_output=True, timeout=60)
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    # in the browser: every image decoded (naturalWidth > 0), no table cell reads nan/None
    probe = out / "probe.html"
    probe.write_text(index.read_text().replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run([chrome, *flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=60).stdout
    found = re.search(r'<pre id="qbt-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run"
    res = json.loads(html.unescape(found.group(1)))
    assert res["images"] >= 10
    assert res["broken"] == [], f"images that did not load: {res['broken'][:5]}"
    assert res["bad_cells"] == [], f"table cells reading nan/None: {res['bad_cells'][:10]}"


# runs in the page after load: counts images, lists the ones that did not decode and the
# table cells whose text is nan / NaN / None, and writes the result into the DOM
_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return (i.getAttribute("src") || "").slice(0, 60); });
  var cells = Array.prototype.slice.call(document.querySelectorAll("td, th"));
  var bad = cells.filter(function (c) { return /^\\s*(nan|NaN|None|<NA>)\\s*$/.test(c.textContent); })
                 .map(function (c) { var r = c.closest("tr");
                                     return (r ? r.textContent : c.textContent).slice(0, 120); });
  var pre = document.createElement("pre");
  pre.id = "qbt-probe";
  pre.textContent = JSON.stringify({images: imgs.length, broken: broken, bad_cells: bad});
  document.body.appendChild(pre);
});
</script>"""


# ------------------------------------------------------------------ committed GPU runs
def test_bench_dirs_include_the_committed_gpu_runs(tmp_path):
    """``benchmarks/gpu/<tag>/`` (the committed device runs) is searched after
    ``outputs/bench`` and before the profiling notebook's runs."""
    dirs = report.bench_dirs(tmp_path)
    committed = sorted(p for p in paths.GPU_RESULTS.iterdir()
                       if p.is_dir() and any(p.glob("*.json")))
    assert committed, "no committed GPU run in benchmarks/gpu/<tag>/"
    assert dirs == [tmp_path / "bench", *committed, tmp_path / "profiling" / "bench"]
    docs = report.bench_docs(dirs)
    assert {Path(d["_path"]).parent for d in docs} == set(committed)
    assert all(len(load_results(p)) == len(list(p.glob("*.json"))) for p in committed)


def test_report_and_readme_pick_up_the_committed_gpu_runs(tmp_path):
    """Every committed GPU run that states a GPU figure shows in the summary rows and in the
    README block (asv path), naming its JSON."""
    from qbt_lib.profiling import gpu_figure
    rows = {r["workload"]: r for r in report.summary_rows(tmp_path / "outputs",
                                                          results_dir=tmp_path / "no-asv")}
    md = report.readme_results(results_dir=ASV_FIXTURES)
    assert "| GPU (committed GPU run) |" in md
    shown = 0
    for d in load_results(None):
        if not str(d["_path"]).startswith(str(paths.GPU_RESULTS)):
            continue
        text, src = gpu_figure([d])
        if src is None:
            continue
        wl, name = d["workload"], Path(d["_path"]).name
        line = next(x for x in md.splitlines() if x.startswith(f"| {wl} |"))
        assert f"`{Path(d['_path']).relative_to(paths.PROJ_ROOT)}`" in line
        assert text.replace("|", "/") in line
        assert rows[wl]["headline"]["gpu"] != "-"
        assert name in [Path(g["_path"]).name for g in [rows[wl]["bench"],
                                                         *rows[wl]["gpu_benches"]] if g]
        shown += 1
    assert shown >= 1


def test_a_dropped_in_gpu_run_replaces_the_committed_one(tmp_path, monkeypatch, bench_fixtures):
    committed = tmp_path / "gpu"
    (committed / "h100").mkdir(parents=True)
    doc = json.loads((bench_fixtures / "synth-h100.json").read_text())
    (committed / "h100" / "synth-h100.json").write_text(
        json.dumps(dict(doc, headline={"gpu": "the committed run's figure"})))
    monkeypatch.setattr(paths, "GPU_RESULTS", committed)
    outputs = tmp_path / "outputs"
    no_asv = tmp_path / "no-asv"
    s = {r["workload"]: r for r in report.summary_rows(outputs, results_dir=no_asv)}["synth"]
    assert s["headline"]["gpu"] == "the committed run's figure"  # stated by the GPU run
    assert s["source"]["gpu"] == "synth-h100.json"
    assert s["bench"]["_path"] == str(committed / "h100" / "synth-h100.json")
    (outputs / "bench").mkdir(parents=True)
    shutil.copy(bench_fixtures / "synth-h100.json", outputs / "bench")
    shutil.copy(bench_fixtures / "synth.json", outputs / "bench")
    s = {r["workload"]: r for r in report.summary_rows(outputs, results_dir=no_asv)}["synth"]
    assert [g["_path"] for g in s["gpu_benches"]] == [str(outputs / "bench" / "synth-h100.json")]
    assert s["headline"]["gpu"].startswith("800M samples/s on fixture GPU")
    md = report.readme_results(results_dir=ASV_FIXTURES)  # the README: committed runs only
    line = next(x for x in md.splitlines() if x.startswith("| synth |"))
    assert "the committed run's figure" in line and str(committed / "h100") in line
