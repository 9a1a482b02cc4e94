"""Benchmark history (asv): the suite tracks every figure each bench names, the newest results
of a machine are read back with their file, and asv compare's falls are flagged."""
from __future__ import annotations

import importlib
import shutil

import pytest

from qbt_lib import paths, report
from qbt_lib.bench import WORKLOADS, Bench, history

ASV_FIXTURES = paths.PROJ_ROOT / "tests" / "fixtures" / "asv-results"


def test_every_workload_tracks_its_summary_figures():
    for wl in WORKLOADS:
        mod = importlib.import_module(f"qbt_lib.{wl}.bench")
        assert mod.TRACKED and set(mod.TRACKED.values()) <= {
            "x", "fraction", *{u for u in mod.TRACKED.values() if u.endswith("/s")}}
        assert set(mod.SUMMARY.values()) <= set(mod.TRACKED), wl


def test_asv_suite_has_a_track_per_figure():
    import sys
    sys.path.insert(0, str(paths.PROJ_ROOT))
    try:
        suite = importlib.import_module("benchmarks.benchmarks")
    finally:
        sys.path.remove(str(paths.PROJ_ROOT))
    for wl in WORKLOADS:
        cls = getattr(suite, wl.capitalize())
        tracked = importlib.import_module(f"qbt_lib.{wl}.bench").TRACKED
        for key, unit in tracked.items():
            fn = getattr(cls, f"track_{key}")
            assert fn.unit == unit
            assert fn(None, {key: 2.5}) == 2.5
        assert cls.setup_cache.__qualname__.startswith(cls.__name__)  # one cache per workload


def test_newest_results_and_figures():
    p = history.newest_results("vm", ASV_FIXTURES)
    assert p.name.startswith("bf2eaaa6")
    r = history.read_results(p)
    assert r["machine"] == "vm"
    v, unit = r["figures"]["synth"]["materialized_vs_reference"]
    assert unit == "x" and v == pytest.approx(24.18, rel=1e-3)
    # another machine's results are used only when this one has none
    assert history.newest_results("no-such-machine", ASV_FIXTURES) == p


def test_regression_flagged_by_asv_compare():
    reg = history.regressions("vm", results_dir=ASV_FIXTURES)
    assert reg["against"].name.startswith("b0445d19")
    assert len(reg["regressions"]) == 1, reg["output"][-2000:]
    assert "track_materialized_vs_reference" in reg["regressions"][0]


def test_report_and_readme_read_the_newest_asv_results(tmp_path):
    s = report.asv_summary(ASV_FIXTURES)
    assert s["machine"] == "vm" and s["rel"].endswith(".json")
    assert s["rows"]["synth"]["speedup_vs_reference"].startswith("24.2x")
    md = report.readme_results(results_dir=ASV_FIXTURES)
    for wl in WORKLOADS:
        assert f"| {wl} |" in md
    assert md.count(s["rel"]) == len(WORKLOADS)  # each row names its file
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<html>asv</html>")
    out = tmp_path / "report"
    page = report.render(out, tmp_path / "outputs", docs=[], results_dir=ASV_FIXTURES,
                         html_dir=html).read_text()
    assert 'id="regressions" class="bad"' in page and "track_materialized_vs_reference" in page
    assert (out / "history" / "index.html").exists() and 'href="history/index.html"' in page
    assert s["rel"] in page


def test_tracked_figures_runs_the_bench(monkeypatch):
    import types
    mod = types.ModuleType("qbt_lib.fake.bench")
    mod.TRACKED = {"speed": "x", "thr": "items/s"}

    def run(b: Bench):
        a = b.add_case("a", [1.0, 1.1], impl="reference", size=10)
        c = b.add_case("c", [0.1, 0.12], impl="numba", size=10)
        b.ratio("c vs a", c, a, key="speed", headline=True)
        b.figure("thr", c["throughput"], "items/s", "c", case=c)
    mod.run = run
    monkeypatch.setitem(__import__("sys").modules, "qbt_lib.fake.bench", mod)
    monkeypatch.setattr(history, "importlib", types.SimpleNamespace(
        import_module=lambda name: mod))
    figs = history.tracked_figures("fake", "tiny", write=False)
    assert figs["speed"] == pytest.approx(1.05 / 0.11, rel=1e-6) and figs["thr"] > 0
    # by default only a full-size run writes its bench JSON: `make bench-check` (tiny) never
    # replaces the full-size outputs/bench/<workload>.json
    writes = []

    class Recording(Bench):
        def finish(self, write: bool = True):
            writes.append(write)
            return super().finish(write=False)
    monkeypatch.setattr(history, "Bench", Recording)
    history.tracked_figures("fake", "tiny")
    history.tracked_figures("fake", "full")
    assert writes == [False, True]
    assert shutil.which  # keep the import used
