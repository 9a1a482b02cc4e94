"""The profiling layer: parameters, running a workload's benchmark through ProfilingBench
(hints, repeat cap, cProfile), and the tables/plots computed from the bench JSON schema."""
from __future__ import annotations

import copy
import json
import textwrap

import matplotlib
import pytest

matplotlib.use("Agg")

from qbt_lib import paths  # noqa: E402
from qbt_lib import profiling as prof  # noqa: E402

FIXTURES = paths.PROJ_ROOT / "tests" / "fixtures" / "bench"
MACHINE = {"hostname": "t", "cores": 4, "cpu": "test CPU", "memory_gb": 8.0, "gpu": None}


def _case(name, impl, size, seconds, unit="items", n_jobs=1, backend="sequential",
          device="cpu", **extra):
    return {"name": name, "impl": impl, "size": size, "unit": unit, "n_jobs": n_jobs,
            "backend": backend, "device": device, "seconds": seconds, "times": [seconds],
            "throughput": size / seconds, **extra}


def _doc(cases, workload="synth", machine=MACHINE, **kw):
    d = {"schema": 1, "workload": workload, "quick": True, "tag": None,
         "created": "2026-01-01T00:00:00+00:00", "machine": machine,
         "versions": {"python": "3.11"}, "copy_GBps": 10.0, "cases": cases, "ratios": [],
         "headline": {}, "notes": {}, "_path": f"/x/{workload}.json"}
    d.update(kw)
    return d


# ------------------------------------------------------------------ parameters
def test_config_defaults_and_all(tmp_path):
    rel = "outputs/test-profiling-config"
    try:
        cfg = prof.ProfilingConfig.from_params(output_dir=rel)
        assert cfg.output_dir == paths.OUTPUTS / "test-profiling-config"  # from the root
    finally:
        (paths.PROJ_ROOT / rel).rmdir()
    assert cfg.workloads == ["synth", "straddles", "walkforward", "waves", "marketsim"]
    assert cfg.n_jobs == [1, 2, -1] and cfg.size == "quick" and cfg.profile
    cfg = prof.ProfilingConfig.from_params(workloads="waves, synth", n_jobs=[1.0, 4.0],
                                           size="FULL", profile="false",
                                           output_dir=tmp_path)
    assert cfg.workloads == ["waves", "synth"] and cfg.n_jobs == [1, 4]
    assert cfg.size == "full" and cfg.profile is False


@pytest.mark.parametrize("kw,name", [
    ({"workloads": ["synth", "nope"]}, "workloads"), ({"workloads": []}, "workloads"),
    ({"size": "medium"}, "size"), ({"n_jobs": [1, 0]}, "n_jobs"), ({"n_jobs": [1.5]}, "n_jobs"),
    ({"backends": ["mpi"]}, "backends"), ({"devices": ["tpu"]}, "devices"),
    ({"profile": "maybe"}, "profile"), ({"results_from": "no/such/folder"}, "results_from"),
    ({"max_repeats": 0}, "max_repeats"), ({"top": 0}, "top")])
def test_config_rejects_bad_parameters(kw, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name}"):
        prof.ProfilingConfig.from_params(output_dir=tmp_path, **kw)


@pytest.mark.parametrize("x,s", [(2304, "2,304"), (3157.4, "3.16k"), (7.69e6, "7.69M"),
                                 (0.73, "0.73"), (2.5e9, "2.5G"), (None, "-"),
                                 (float("nan"), "-")])
def test_human(x, s):
    assert prof.human(x) == s


@pytest.mark.parametrize("x,s", [(3076.9, "3,077x"), (44.44, "44.4x"), (1.714, "1.71x"),
                                 (0.075, "0.075x"), (float("inf"), "-")])
def test_times(x, s):
    assert prof.times(x) == s


# ------------------------------------------------------------------ running a benchmark
FAKE_BENCH = '''
import numpy as np

SEEN = {}

def _loop(n):
    s = 0.0
    for i in range(n):
        s += i * 0.5
    return s

def run(bench):
    SEEN["hints"] = (bench.n_jobs_list, bench.backends, bench.devices)
    for n in (2_000, 20_000):
        bench.measure(f"reference n={n}", lambda n=n: _loop(n), impl="reference", size=n,
                      unit="samples", repeats=5)
    a = np.arange(200_000, dtype=np.float64)
    for n in (20_000, 200_000):
        bench.measure(f"numpy n={n}", lambda n=n: float((a[:n] * 0.5).sum()), impl="numpy",
                      size=n, unit="samples", repeats=5, nbytes=8 * n)
    bench.measure("numpy n=200000 x2", lambda: float((a * 0.5).sum()), impl="numpy",
                  size=200_000, unit="samples", n_jobs=2, backend="threads", repeats=5)
    bench.ratio("numpy vs reference", bench.cases[-2], bench.cases[1], target=1.0)
    del a  # the closures above can no longer be called: profiles must already be taken
'''


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    mod = tmp_path / "fake_qbt_bench.py"
    mod.write_text(textwrap.dedent(FAKE_BENCH))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_qbt_bench"


def _cfg(tmp_path, **kw):
    base = dict(workloads=["synth"], size="tiny", output_dir=tmp_path / "out", max_repeats=1,
                profile_seconds=5.0, top=8)
    base.update(kw)
    return prof.ProfilingConfig(**base)


def test_run_benchmark_profiles_caps_repeats_and_passes_hints(tmp_path, fake_bench):
    cfg = _cfg(tmp_path, n_jobs=[1, 2], backends=["sequential", "threads"])
    r = prof.run_benchmark("synth", cfg, module=fake_bench)
    assert r.status == "ok", r.message
    import fake_qbt_bench
    assert fake_qbt_bench.SEEN["hints"] == ((1, 2), ("sequential", "threads"), ("cpu", "gpu"))
    doc = json.loads((tmp_path / "out" / "bench" / "synth.json").read_text())
    assert doc["machine"]["cores"] >= 1 and doc["versions"]["numpy"]
    assert len(doc["cases"]) == 5
    # max_repeats=1 lowers the bench's minimum of 5 (tiny: no time to fill)
    assert all(len(c["times"]) == 1 == c["repeats"] for c in doc["cases"])
    assert all(c["min"] <= c["seconds"] <= c["max"] for c in doc["cases"])
    profiles = {p["kind"]: p for p in doc["notes"]["profiles"]}
    # reference: its largest run within profile_seconds; fast path: best single-worker CPU case
    assert profiles["reference"]["case"] == "reference n=20000"
    assert profiles["fast path"]["impl"] == "numpy" and "error" not in profiles["fast path"]
    assert any("_loop" in row["function"] for row in profiles["reference"]["top"])
    assert len(profiles["reference"]["top"]) <= 8
    assert doc["notes"]["profiling_config"]["n_jobs"] == [1, 2]
    assert doc["notes"]["rss_at_start_mb"] > 0
    mem = prof.memory_table(r.doc)
    assert (mem["above start MiB"] >= 0).all() and (mem["peak RSS MiB"] > 0).all()
    assert r.doc["_path"].endswith("synth.json")
    log = (tmp_path / "out" / "bench" / "synth.log").read_text()  # the bench's own table
    assert "numpy n=200000 x2" in log and "ratio numpy vs reference" in log


def test_run_benchmark_without_profile(tmp_path, fake_bench):
    r = prof.run_benchmark("synth", _cfg(tmp_path, profile=False), module=fake_bench)
    assert r.ok and "profiles" not in r.doc["notes"]


def test_missing_and_failing_workloads_are_reported_not_skipped(tmp_path, monkeypatch, capsys):
    r = prof.run_benchmark("synth", _cfg(tmp_path), module="no_such_qbt_module.bench")
    assert r.status == "missing" and "no_such_qbt_module.bench does not exist yet" in r.message
    (tmp_path / "broken_qbt_bench.py").write_text(
        "def run(bench):\n    raise RuntimeError('boom\\n' + 'very long detail ' * 500)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = prof.run_benchmark("synth", _cfg(tmp_path), module="broken_qbt_bench")
    assert r.status == "error" and r.message == "RuntimeError: boom"
    assert "Traceback" in (tmp_path / "out" / "bench" / "synth.log").read_text()
    results = {"synth": r, "waves": prof.WorkloadResult("waves", "missing", "not yet")}
    assert list(prof.each(results)) == []
    out = capsys.readouterr().out
    assert "synth: error: RuntimeError: boom" in out and "waves: missing: not yet" in out


def test_load_all_names_workloads_without_json(tmp_path):
    (tmp_path / "synth.json").write_text(json.dumps(_doc([_case("a", "reference", 10, 1.0)])))
    (tmp_path / "junk.json").write_text("{not json")
    cfg = prof.ProfilingConfig.from_params(workloads="synth,waves", results_from=tmp_path,
                                           output_dir=tmp_path / "out")
    res = prof.run_all(cfg)
    assert res["synth"].ok and res["waves"].status == "missing"
    assert "no bench JSON for waves" in res["waves"].message


def test_profile_call_top_functions():
    def inner():
        return sum(i for i in range(1000))

    def outer():
        return [inner() for _ in range(5)]

    p = prof.profile_call(outer, top=5)
    names = [r["function"] for r in p["top"]]
    assert len(names) <= 5 and any("outer" in n for n in names)
    inner_row = next(r for r in p["top"] if "inner" in r["function"] and "genexpr" not in r["function"])
    assert inner_row["ncalls"] == 5
    assert "tests/test_profiling.py" in inner_row["function"]  # paths shown project-relative
    cum = [r["cumtime"] for r in p["top"]]
    assert cum == sorted(cum, reverse=True)


# ------------------------------------------------------------------ tables from the schema
def _sweep_doc():
    return _doc([
        _case("ref 1k", "reference", 1000, 1.0, unit="samples"),
        _case("ref 10k", "reference", 10000, 10.0, unit="samples"),
        _case("fast 10k", "numba", 10000, 0.1, unit="samples", GBps=2.0, bw_fraction=0.2),
        _case("fast 1M", "numba", 1e6, 8.0, unit="samples"),
        _case("fast 1M loky x2", "numba", 1e6, 5.0, unit="samples", n_jobs=2, backend="loky"),
        _case("fast 1M loky all", "numba", 1e6, 2.5, unit="samples", n_jobs=-1, backend="loky"),
        _case("fast 1M threads all", "numba", 1e6, 4.0, unit="samples", n_jobs=-1,
              backend="threads", peak_rss_mb=123.0),
    ])


def test_cases_frame_resolves_workers_against_the_json_machine():
    df = prof.cases_frame(_sweep_doc())
    assert df.set_index("name").loc["fast 1M loky all", "workers"] == 4  # cores of the JSON
    assert df["is_reference"].sum() == 2
    assert prof.primary_unit(df) == "samples"


def test_speedup_table_uses_same_size_reference_else_nearest():
    sp = prof.speedup_table(_sweep_doc()).set_index("case")
    assert sp.loc["fast 10k", "speedup"] == pytest.approx(100.0)
    assert sp.loc["fast 10k", "reference size"] == 10000
    # 1M has no reference run: the nearest (10k) reference throughput is used
    assert sp.loc["fast 1M", "reference size"] == 10000
    assert sp.loc["fast 1M", "speedup"] == pytest.approx((1e6 / 8.0) / 1000.0)


def test_parallel_table_speedup_and_efficiency():
    par = prof.parallel_table(_sweep_doc())
    row = par[(par["backend"] == "loky") & (par["workers"] == 4)].iloc[0]
    assert row["speedup"] == pytest.approx(8.0 / 2.5)
    assert row["efficiency"] == pytest.approx(8.0 / 2.5 / 4)
    assert row["baseline"] == "fast 1M"
    assert set(par["workers"]) == {1, 2, 4}
    # the notebook's n_jobs / backends filter (resolved on the JSON's own 4 cores)
    cfg = prof.ProfilingConfig(workloads=["synth"], n_jobs=[1, 2], backends=["sequential", "loky"])
    par = prof.parallel_table(_sweep_doc(), cfg)
    assert set(zip(par["backend"], par["workers"])) == {("sequential", 1), ("loky", 2)}


def test_parallel_cases_pair_with_their_own_single_worker_run():
    d = _doc([_case("ridge cold n_jobs=1", "fast", 20, 0.7, unit="folds"),
              _case("ridge warm n_jobs=1", "fast", 20, 0.07, unit="folds"),
              _case("ridge warm n_jobs=2", "fast", 20, 0.05, unit="folds", n_jobs=2,
                    backend="loky"),
              _case("forest n_jobs=1", "fast", 20, 1.5, unit="folds"),
              _case("forest n_jobs=2", "fast", 20, 1.0, unit="folds", n_jobs=2,
                    backend="loky"),
              _case("odd x2", "fast", 20, 0.5, unit="folds", n_jobs=2, backend="threads",
                    baseline="ridge cold n_jobs=1")])
    par = prof.parallel_table(d).set_index(["baseline", "workers", "backend"])
    assert par.loc[("ridge warm n_jobs=1", 2, "loky"), "speedup"] == pytest.approx(0.07 / 0.05)
    assert par.loc[("forest n_jobs=1", 2, "loky"), "speedup"] == pytest.approx(1.5)
    assert par.loc[("ridge cold n_jobs=1", 2, "threads"), "speedup"] == pytest.approx(1.4)
    assert len(par) == 6  # three parallel cases and their three baselines
    assert prof.plot_parallel(d) is not None


def test_filter_keeps_backends_outside_the_parallel_layer():
    d = _doc([_case("k1", "numba", 10, 1.0, backend="numba-threads"),
              _case("k2", "numba", 10, 0.6, n_jobs=2, backend="numba-threads"),
              _case("t2", "numba", 10, 0.6, n_jobs=2, backend="threads")])
    cfg = prof.ProfilingConfig(workloads=["synth"], n_jobs=[1, 2], backends=["loky"])
    par = prof.parallel_table(d, cfg)
    assert set(par["backend"]) == {"numba-threads"}  # threads not requested, numba-threads kept


def test_bandwidth_memory_ratios_tables():
    d = _sweep_doc()
    d["ratios"] = [{"name": "fast vs ref", "value": 100.0, "num": "fast 10k", "den": "ref 10k",
                    "target": 30, "ok": True},
                   {"name": "x2", "value": 1.6, "num": "a", "den": "b", "target": None,
                    "ok": None}]
    bw = prof.bandwidth_table(d)
    assert list(bw["case"]) == ["fast 10k"] and bw["copy GB/s"].iloc[0] == 10.0
    mem = prof.memory_table(d)
    assert mem.set_index("case").loc["fast 1M threads all", "peak RSS MiB"] == 123.0
    rt = prof.ratios_table(d)
    assert list(rt["status"]) == ["ok", "-"]


def test_seed_comparison_is_fair_about_workers():
    sc = prof.seed_comparison(_sweep_doc()).set_index("seed figure")
    before = sc.loc["before: sequential loop"]
    # a 1-worker seed figure is compared with our best 1-worker case (fast 1M: 125k/s)
    assert before["our case"] == "fast 1M"
    assert before["x seed"] == pytest.approx((1e6 / 8.0) / (1e6 / 300.0))
    assert before["source"] == "docs/synth.md"
    multi = sc.loc["after: vectorized + joblib, 8 cores"]
    assert multi["our case"] == "fast 1M loky all"
    assert sc.loc["combined speed-up claimed", "x seed"] == pytest.approx(400.0 / 240)
    # a speed-up figure is compared with the named headline ratio once there is one, not
    # with the best speed-up over every case
    d = _sweep_doc()
    d["cases"].append(_case("kept 10k", "numba", 10000, 5.0, unit="samples"))
    d["ratios"] = [{"name": "kept 10k vs ref 10k", "value": 2.0, "num": "kept 10k",
                    "den": "ref 10k", "headline": True}]
    row = prof.seed_comparison(d).set_index("seed figure").loc["combined speed-up claimed"]
    assert row["our case"] == "kept 10k" and row["x seed"] == pytest.approx(2.0 / 240)
    assert "headline ratio, 1 workers" in row["ours"]
    other = prof.seed_comparison(_doc([_case("r", "reference", 5, 1.0, unit="bananas")],
                                      workload="straddles"))
    assert other["ours"].str.startswith("no comparable case").all()


def test_seed_comparison_uses_a_rate_stated_in_the_seed_unit():
    d = _doc([_case("ref", "reference", 1000, 1.0, unit="straddle-days"),
              _case("fast", "numba", 64000, 0.01, unit="straddle-days",
                    straddles_per_s=100_000.0)], workload="straddles")
    sc = prof.seed_comparison(d).set_index("seed figure")
    row = sc.loc["single thread"]
    assert row["our case"] == "fast"
    assert row["x seed"] == pytest.approx(100_000.0 / (2304 / 0.73))


def test_workload_can_state_its_own_seed_figures():
    d = _sweep_doc()
    d["notes"]["seed_figures"] = [{"workload": "synth", "source": "seeds/x.txt", "label": "own",
                                   "kind": "time", "size": 100.0, "unit": "samples",
                                   "seconds_lo": 1.0, "seconds_hi": 1.0, "workers": 1}]
    sc = prof.seed_comparison(d)
    assert list(sc["seed figure"]) == ["own"]


def test_gpu_table_and_primary_pick():
    cpu_old = _doc([_case("a", "numba", 10, 1.0)], created="2026-01-01")
    cpu_new = _doc([_case("a", "numba", 10, 1.0)], created="2026-02-01")
    cpu_quick_full = _doc([_case("a", "numba", 10, 1.0)], created="2025-01-01", quick=False)
    gmachine = dict(MACHINE, gpu="Test GPU", cores=16)
    gpu = _doc([_case("numba x16", "numba", 1e8, 2.0, n_jobs=-1, backend="threads"),
                _case("cupy", "cupy", 1e8, 0.1, device="gpu", GBps=900.0)],
               machine=gmachine, tag="h100", notes={"gpu_copy_GBps": 3000.0})
    gpu["_path"] = "/x/synth-h100.json"
    docs = [cpu_old, cpu_new, gpu]
    assert prof.pick_primary(docs, "synth") is cpu_new
    assert prof.pick_primary(docs + [cpu_quick_full], "synth") is cpu_quick_full
    assert prof.pick_primary(docs, "waves") is None
    # outputs/bench (searched first) before the profiling notebook's quick runs
    first, later = dict(cpu_old, _dir_rank=0), dict(cpu_new, _dir_rank=1)
    assert prof.pick_primary([later, first], "synth") is first
    assert prof.has_gpu(gpu) and not prof.has_gpu(cpu_new)
    g = prof.gpu_table([gpu]).iloc[0]
    assert g["cpu case"] == "numba x16" and g["gpu / cpu"] == pytest.approx(20.0)
    assert g["same work"] == prof.FASTEST_CPU  # no GPU ratio stated: said so, not hidden
    labels = prof.plot_gpu(prof.gpu_table([gpu])).axes[0].get_legend_handles_labels()[1]
    assert labels == ["GPU", "fastest CPU case (work not stated as the same)"]
    assert g["fraction of device copy"] == pytest.approx(0.3)
    # the summary's GPU figure is the one the run states (one named case), never the
    # fastest GPU case against the best CPU case (a maximum over different work)
    assert prof.summarize(cpu_new, [gpu])["gpu"] == "-"
    gpu["headline"] = {"gpu": "1G items/s on Test GPU (cupy, one named case)"}
    assert prof.summarize(cpu_new, [gpu])["gpu"].startswith(
        "1G items/s on Test GPU (cupy, one named case)")


def test_gpu_table_pairs_each_gpu_case_with_its_ratios_cpu_side():
    """A GPU case is set against the CPU side of the bench ratio that names it (the same
    work), not against the fastest CPU case of its unit; a GPU case no ratio names gets no
    CPU side. The committed H200 straddles run: its host-table GPU case is 0.214x the CPU
    case keeping the same table, not 0.10x the faster summary-only CPU case."""
    doc = prof.load_json(paths.GPU_RESULTS / "h200" / "straddles-h200.json")
    g = prof.gpu_table([doc]).set_index("case")
    r = next(x for x in doc["ratios"] if x["num"] in g.index)
    row = g.loc[r["num"]]
    assert row["cpu case"] == r["den"] and "summary only" not in row["cpu case"]
    assert row["gpu / cpu"] == pytest.approx(r["value"]) == pytest.approx(0.2144, abs=1e-3)
    assert row["same work"] == r["same"]
    unnamed = g[~g.index.isin([x["num"] for x in doc["ratios"]])]
    assert len(unnamed) and (unnamed["cpu case"] == "-").all()
    assert unnamed["gpu / cpu"].isna().all()
    fig = prof.plot_gpu(g.reset_index())
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["GPU", "CPU, same work (the bench's ratio)"]


def test_gpu_json_dropped_into_outputs_bench_is_picked_up(tmp_path, monkeypatch):
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    gpu = _doc([_case("cupy", "cupy", 1e8, 0.1, device="gpu")],
               machine=dict(MACHINE, gpu="Test GPU"))
    (bench_dir / "synth-h100.json").write_text(json.dumps(gpu))
    (bench_dir / "synth.json").write_text(json.dumps(_sweep_doc()))
    (bench_dir / "waves-h100.json").write_text(json.dumps(dict(gpu, workload="waves")))
    monkeypatch.setattr(paths, "BENCH_DIR", bench_dir)
    monkeypatch.setattr(paths, "GPU_RESULTS", tmp_path / "no-committed-gpu-runs")
    cfg = prof.ProfilingConfig(workloads=["synth"], output_dir=tmp_path / "out")
    found = prof.gpu_docs(cfg)
    assert [d["_path"].split("/")[-1] for d in found] == ["synth-h100.json"]
    # committed GPU runs (benchmarks/gpu/<tag>/) are picked up too; a run dropped into
    # outputs/bench replaces the committed one of the same name
    committed = tmp_path / "gpu"
    for tag in ("h100", "h200"):
        (committed / tag).mkdir(parents=True)
        (committed / tag / f"synth-{tag}.json").write_text(json.dumps(gpu))
    monkeypatch.setattr(paths, "GPU_RESULTS", committed)
    found = prof.gpu_docs(cfg)
    assert [d["_path"] for d in found] == [str(bench_dir / "synth-h100.json"),
                                           str(committed / "h200" / "synth-h200.json")]


def test_summarize_headline_is_the_named_case_never_a_maximum():
    d = _sweep_doc()
    s = prof.summarize(d)  # no headline ratio, no efficiency measured: nothing is made up
    assert s == {k: "-" for k in s}
    assert prof.summarize(None) == {k: "-" for k in s}
    d["ratios"] = [
        {"name": "fast 1M loky all vs ref", "value": 400.0, "num": "fast 1M loky all",
         "den": "ref 10k"},  # the largest: not the headline
        {"name": "fast 10k vs ref 10k (same work)", "value": 100.0, "lo": 90.0, "hi": 110.0,
         "num": "fast 10k", "den": "ref 10k", "headline": True},
        {"name": "loky 1 -> 4 workers", "kind": "efficiency", "value": 0.8,
         "num": "fast 1M loky all", "den": "fast 1M"}]
    s = prof.summarize(d)
    assert s["speedup_vs_reference"] == "100x [90x-110x] (fast 10k vs ref 10k (same work))"
    assert s["throughput"].endswith("samples/s (fast 10k)")
    assert s["parallel_efficiency"] == "80% (loky 1 -> 4 workers)"
    d["ratios"][2].update(value=None, dropped=1.3)  # above 100% without a reason
    assert prof.summarize(d)["parallel_efficiency"].startswith("not printed")
    d["ratios"][2].update(value=1.1, reason="write-mostly kernel: less cache traffic")
    assert "write-mostly" in prof.summarize(d)["parallel_efficiency"]


def test_summarize_prefers_the_benchmarks_own_headline():
    d = _sweep_doc()
    d["headline"] = {"throughput": "9M samples/s (stated)", "parallel_efficiency": 0.9,
                     "gpu": "not measured (no GPU)"}
    s = prof.summarize(d)
    assert s["throughput"] == "9M samples/s (stated)"
    assert s["parallel_efficiency"] == "-"  # non-string: not taken, and nothing computed
    assert s["gpu"] == "not measured (no GPU)"


def test_parallel_table_does_not_print_an_unexplained_efficiency_above_100():
    import math
    d = _doc([_case("k n_jobs=1", "numba", 10, 1.0), _case("k n_jobs=2", "numba", 10, 0.4,
                                                          n_jobs=2, backend="threads")])
    row = prof.parallel_table(d).set_index("workers").loc[2]
    assert math.isnan(row["efficiency"]) and "not printed" in row["note"]
    d["ratios"] = [{"name": "k", "kind": "efficiency", "value": 1.25, "num": "k n_jobs=2",
                    "den": "k n_jobs=1", "reason": "cache effects"}]
    row = prof.parallel_table(d).set_index("workers").loc[2]
    assert row["efficiency"] == pytest.approx(1.25) and "cache effects" in row["note"]


def test_checks_flag_untraceable_json_and_slow_fast_path():
    good = prof.WorkloadResult("synth", "ok", "", _sweep_doc(), "/x/synth.json")
    assert prof.check_traceable({"synth": good}) == []
    bad_doc = _sweep_doc()
    bad_doc["machine"] = {}
    bad = prof.WorkloadResult("synth", "ok", "", bad_doc, "/x")
    assert any("machine not recorded" in p for p in prof.check_traceable({"synth": bad}))
    assert prof.check_traceable({"w": prof.WorkloadResult("w", "missing", "")})
    assert prof.speedup_floor_failures({"synth": good}, 1.0) == []
    assert prof.speedup_floor_failures({"synth": good}, 1000.0)
    # the floor holds the named headline ratio (2x), not the best speed-up over every case
    # ("fast 10k": 100x, other work)
    head_doc = _sweep_doc()
    head_doc["cases"].append(_case("kept 10k", "numba", 10000, 5.0, unit="samples"))
    head_doc["ratios"] = [{"name": "kept 10k vs ref 10k", "value": 2.0, "num": "kept 10k",
                           "den": "ref 10k", "headline": True}]
    head = prof.WorkloadResult("synth", "ok", "", head_doc, "/x/synth.json")
    assert prof.speedup_floor_failures({"synth": head}, 1.5) == []
    slow = prof.speedup_floor_failures({"synth": head}, 10.0)
    assert len(slow) == 1 and "headline speed-up 2.00x" in slow[0]


def test_rounded_keeps_whole_numbers_whole():
    import pandas as pd
    df = prof.rounded(pd.DataFrame({"size": [2304.0, 1e7], "x": [1.23456, float("nan")],
                                    "y": [1234567.0, 0.5]}))
    assert list(df["size"]) == [2304, 10_000_000]
    assert list(df["x"]) == ["1.23", "-"] and list(df["y"]) == ["1.23M", "0.5"]


# ------------------------------------------------------------------ plots
def test_plots_from_fixture_jsons(bench_fixtures):
    docs = prof.find_jsons([bench_fixtures])
    assert {d["workload"] for d in docs} == {"synth", "straddles", "walkforward", "waves",
                                             "marketsim"}
    synth = prof.pick_primary(docs, "synth")
    figs = [prof.plot_time_vs_size(synth), prof.plot_speedups(synth),
            prof.plot_parallel(synth), prof.plot_memory(synth),
            prof.plot_bandwidth([prof.bandwidth_table(synth)]),
            prof.plot_gpu(prof.gpu_table([d for d in docs if prof.has_gpu(d)]))]
    assert all(f is not None for f in figs)
    ax = figs[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    texts = " ".join(t.get_text() for f in figs[:2] for a in f.axes for t in a.texts)
    assert "seed: before: sequential loop" in texts and "[synth.md]" in texts
    import matplotlib.pyplot as plt
    plt.close("all")
    empty = _doc([])
    assert prof.plot_time_vs_size(empty) is None and prof.plot_parallel(empty) is None
    assert prof.plot_bandwidth([prof.bandwidth_table(empty)]) is None


def test_fixture_jsons_keep_the_bench_schema(tmp_path):
    """The only committed bench JSON (the GPU run: it cannot run here) is what the bench's own
    writer makes from its spec, labelled as test data."""
    from bench_fixtures import GPU_ONLY, write_fixtures
    committed = sorted(p.name for p in FIXTURES.glob("*.json"))
    assert committed == [f"{n}.json" for n in GPU_ONLY]
    write_fixtures(tmp_path, GPU_ONLY)
    for n in GPU_ONLY:
        made = json.loads((tmp_path / f"{n}.json").read_text())
        kept = json.loads((FIXTURES / f"{n}.json").read_text())
        assert made == kept, f"{n}.json: run python tests/bench_fixtures.py"
        assert "test data" in kept["notes"]["test_data"]
        assert "not a measurement" in kept["machine"]["gpu"]


def test_checks_fail_on_an_errored_bench_and_on_real_run_problems(tmp_path):
    err = prof.WorkloadResult("waves", "error", "KeyError: boom")
    assert any("benchmark failed" in p for p in prof.check_traceable({"waves": err}))
    from qbt_lib.waves.bench import TRACKED
    d = _doc([_case("ref", "reference", 10, 1.0), _case("fast", "numba", 10, 0.1)],
             workload="waves")
    d["ratios"] = [{"name": "fast vs ref", "value": 10.0, "num": "fast", "den": "ref",
                    "key": k, "headline": i == 0} for i, k in enumerate(TRACKED)]
    d["notes"]["profiles"] = [{"kind": "reference", "top": [{"function": "f"}],
                               "peak_rss_mb": 100.0}]
    for c in d["cases"]:
        c.update(min=c["seconds"], max=c["seconds"])
    cfg = prof.ProfilingConfig(workloads=["waves"], output_dir=tmp_path)
    ok = prof.WorkloadResult("waves", "ok", "", d, "/x/waves.json")
    assert prof.check_real_runs({"waves": ok}, cfg) == []
    # the headline must be the ratio the module's SUMMARY shows as the speed-up
    for i, r in enumerate(d["ratios"]):
        r["headline"] = i == 1
    assert any("is not the summary's speed-up" in x
               for x in prof.check_real_runs({"waves": ok}, cfg))
    for i, r in enumerate(d["ratios"]):
        r["headline"] = i == 0
    d["notes"]["same_answers"] = [{"what": "patterns", "ok": False, "detail": "3 vs 4"}]
    d["ratios"] = d["ratios"][1:]  # the headline and one tracked figure gone
    d["notes"]["profiles"] = []
    probs = " | ".join(prof.check_real_runs({"waves": ok}, cfg))
    assert "different answers" in probs and "0 headline" in probs
    assert "missing from the bench JSON" in probs and "reference not profiled" in probs
