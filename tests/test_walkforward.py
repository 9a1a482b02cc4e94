"""walkforward: indicator kernels vs TA-Lib / pandas / exact arithmetic, folds, no look-ahead,
reference == numba (the dispatch table), determinism across n_jobs and backends (Dask included), bad input,
Ctrl-C leaves nothing behind."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qbt_lib import walkforward as wf
from qbt_lib.data import load_ohlcv, synthetic_market
from qbt_lib.walkforward import config, fast, nb
from qbt_lib.walkforward import features as F
from qbt_lib.walkforward.reference import features_pandas

# a small layout: 2 assets, ~390 bars in range, 4 folds of 120 train / 60 test bars
TINY = dict(assets=2, start="2019-01-01", end="2020-06-30", fold_length=120, step_size=60,
            test_length=60, progress=False)
TINY_CFG = {k: v for k, v in TINY.items() if k != "progress"}
KERNELS = [("sma", nb.sma_nb, 20), ("ema", nb.ema_nb, 20), ("rsi", nb.rsi_nb, 14),
           ("momentum", nb.momentum_nb, 5), ("stddev", nb.stddev_nb, 20),
           ("zscore", nb.zscore_nb, 20), ("volume_ratio", nb.volume_ratio_nb, 20)]


def _ohlcv(n=3000, seed=3, sym="SYM002"):
    return synthetic_market(3, n, seed=seed)[sym]


def _run(kernel, x, n):
    return kernel(x, n, np.empty_like(x))


def _assert_rel(a, b, rtol):
    assert np.array_equal(np.isnan(a), np.isnan(b)), "the warm-up (NaN) pattern differs"
    m = ~np.isnan(b)
    err = np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-300)
    assert err.max() <= rtol, f"max relative error {err.max():.3g} > {rtol:g}"


def _bars_key(res):
    """Everything a run computed, as bytes (bitwise comparisons)."""
    return (res.bars[["prediction", "ret", "pnl"]].to_numpy().tobytes(),
            res.bars["position"].to_numpy().tobytes(),
            res.fold_metrics[list(wf.METRICS)].to_numpy().tobytes())


# ------------------------------------------------------------------ kernels vs TA-Lib
@pytest.fixture(scope="module")
def talib():
    return pytest.importorskip("talib", reason="TA-Lib is not installed (pip install -e .[dev])",
                               exc_type=ImportError)


def _talib_ref(talib, name, x, n, df):
    if name == "zscore":
        return (x - talib.SMA(x, n)) / talib.STDDEV(x, n)
    if name == "volume_ratio":
        return x / talib.SMA(x, n)
    return {"sma": talib.SMA, "ema": talib.EMA, "rsi": talib.RSI, "momentum": talib.MOM,
            "stddev": talib.STDDEV}[name](x, n)


@pytest.mark.parametrize("name,kernel,n", KERNELS)
def test_kernels_match_talib(talib, name, kernel, n):
    df = _ohlcv()
    close, volume = df["close"].to_numpy(), df["volume"].to_numpy()
    # std and z-score on returns: on price levels TA-Lib's E[x^2]-E[x]^2 loses digits itself
    # (see test_stddev_zscore_exact); a leading NaN checks the skip-leading-NaN rule
    x = {"stddev": np.r_[np.nan, close[1:] / close[:-1] - 1],
         "zscore": np.r_[np.nan, close[1:] / close[:-1] - 1],
         "volume_ratio": volume}.get(name, close)
    _assert_rel(_run(kernel, x, n), _talib_ref(talib, name, x, n, df), 1e-10)


def test_atr_matches_talib(talib):
    df = _ohlcv()
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    _assert_rel(nb.atr_nb(h, lo, c, 14, np.empty_like(c)), talib.ATR(h, lo, c, 14), 1e-10)


def test_sma_is_talib_bit_for_bit(talib):
    x = np.r_[np.full(3, np.nan), _ohlcv()["close"].to_numpy()]
    np.testing.assert_array_equal(_run(nb.sma_nb, x, 20), talib.SMA(x, 20))
    np.testing.assert_array_equal(_run(nb.momentum_nb, x, 5), talib.MOM(x, 5))


# ------------------------------------------------------------------ kernels vs pandas / exact
def test_kernels_match_pandas():
    df = _ohlcv()
    c = df["close"]
    r = c / c.shift(1) - 1
    _assert_rel(_run(nb.sma_nb, c.to_numpy(), 20), c.rolling(20).mean().to_numpy(), 1e-10)
    _assert_rel(_run(nb.sma_nb, c.to_numpy(), 50), c.rolling(50).mean().to_numpy(), 1e-10)
    _assert_rel(_run(nb.stddev_nb, r.to_numpy(), 20), r.rolling(20).std(ddof=0).to_numpy(), 1e-10)
    zr = ((r - r.rolling(20).mean()) / r.rolling(20).std(ddof=0)).to_numpy()
    _assert_rel(_run(nb.zscore_nb, r.to_numpy(), 20), zr, 1e-9)
    np.testing.assert_array_equal(_run(nb.momentum_nb, c.to_numpy(), 20), c.diff(20).to_numpy())
    seed = c.copy()
    seed.iloc[:19] = np.nan
    seed.iloc[19] = c.iloc[:20].mean()
    _assert_rel(_run(nb.ema_nb, c.to_numpy(), 20),
                seed.ewm(span=20, adjust=False).mean().to_numpy(), 1e-10)


def test_feature_matrix_matches_pandas_reference():
    df = _ohlcv()
    fast_X, fast_y = F.feature_matrix(df)
    ref_X, ref_y = features_pandas(df)
    assert list(fast_X.columns) == list(wf.FEATURES)
    np.testing.assert_array_equal(fast_y.to_numpy(), ref_y.to_numpy())
    for col in wf.FEATURES:
        # pandas' rolling std keeps a running Welford sum and drifts to ~1e-9 on price levels
        rtol = 1e-8 if col == "zscore_20" else 1e-10
        _assert_rel(fast_X[col].to_numpy(), ref_X[col].to_numpy(), rtol)
    assert fast_X.iloc[config.LOOKBACK - 1:].notna().all().all()   # every feature defined
    assert fast_X.iloc[config.LOOKBACK - 2].isna().any()


def _exact_std(x, n):
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        w = [Fraction(float(v)) for v in x[i - n + 1:i + 1]]
        m = sum(w) / n
        out[i] = float(sum((v - m) ** 2 for v in w) / n) ** 0.5
    return out


def test_stddev_zscore_exact():
    """Against exact rational arithmetic on a price path that wanders over a 6x range."""
    x = 100 * np.exp(np.cumsum(np.random.default_rng(5).standard_normal(400) * 0.03))
    exact = _exact_std(x, 20)
    _assert_rel(_run(nb.stddev_nb, x, 20), exact, 1e-12)
    mean = pd.Series(x).rolling(20).mean().to_numpy()
    _assert_rel(_run(nb.zscore_nb, x, 20), (x - mean) / exact, 1e-9)


def test_kernel_edge_cases():
    flat = np.full(40, 5.0)
    assert np.all(_run(nb.stddev_nb, flat, 20)[19:] == 0.0)
    assert np.all(_run(nb.zscore_nb, flat, 20)[19:] == 0.0)
    assert np.all(_run(nb.rsi_nb, flat, 14)[14:] == 0.0)               # TA-Lib: 0 when flat
    assert np.all(_run(nb.volume_ratio_nb, np.zeros(30), 20)[19:] == 1.0)
    short = np.arange(5.0)
    assert np.isnan(_run(nb.sma_nb, short, 20)).all()
    assert np.isnan(nb.atr_nb(short + 1, short, short + 0.5, 14, np.empty(5))).all()


def test_wrappers_keep_the_index_and_check_the_window():
    s = _ohlcv(300)["close"]
    out = F.sma(s, 20)
    assert isinstance(out, pd.Series) and out.index.equals(s.index)
    assert isinstance(F.rsi(s.to_numpy()), np.ndarray)
    with pytest.raises(ValueError, match="window must be >= 1"):
        F.ema(s, 0)
    with pytest.raises(ValueError, match="one-dimensional"):
        F.sma(np.zeros((3, 3)))


# ------------------------------------------------------------------ folds
@pytest.mark.parametrize("size,folds,years", [("small", 4, 2), ("medium", 10, 5),
                                              ("large", 20, 10)])
def test_parameter_files_give_the_seed_workloads(size, folds, years):
    import yaml
    p = yaml.safe_load((Path(__file__).parents[1] / "params/walkforward" / f"{size}.yaml")
                       .read_text())
    cfg = wf.make_config(**{k: p[k] for k in ("symbols", "start", "end", "fold_length",
                                               "step_size", "test_length", "gap", "anchored",
                                               "model", "source")})
    df = cfg.frames[cfg.assets[0]]
    windows = config.fold_windows(*config.check_history(df, cfg.assets[0], cfg), cfg)
    assert len(cfg.assets) == 5 and len(windows) == folds
    assert len(windows) * cfg.test_length == years * 252      # years out of sample


def test_fold_layout_rolling_anchored_gap():
    cfg = wf.make_config(**TINY_CFG)
    w = config.fold_windows(10, 400, cfg)
    assert w[0] == (10, 130, 130, 190) and w[1] == (70, 190, 190, 250)
    assert len(w) == (400 - 10 - 180) // 60 + 1
    gap = wf.make_config(**TINY_CFG, gap=5, anchored=True)
    w = config.fold_windows(10, 400, gap)
    assert w[2] == (10, 250, 255, 315)                  # anchored start, 5-bar embargo
    assert config.fold_rows(w[2]) == (slice(10, 249), slice(254, 314))


# ------------------------------------------------------------------ reference == fast
@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    """Two synthetic assets as CSV files in a folder of their own."""
    d = tmp_path_factory.mktemp("wf-source")
    for sym in ("SYM000", "SYM001"):
        shutil.copy(config.synthetic_source_dir() / f"{sym}.csv", d / f"{sym}.csv")
    return d


@pytest.mark.parametrize("model,extra", [
    ("ridge", {}),
    ("ridge", {"anchored": True, "gap": 3, "long_only": True, "threshold": 0.001,
               "cost_bps": 5.0}),
    ("random_forest", {"n_estimators": 5}),
    ("hist_gb", {"n_estimators": 10}),
])
def test_reference_equals_numba(model, extra):
    kw = {**TINY, "model": model, **extra}
    ref = wf.run(impl="reference", **kw)
    fast_ = wf.run(impl="numba", **kw)
    assert ref.n_folds == fast_.n_folds == 4
    np.testing.assert_array_equal(ref.bars["position"], fast_.bars["position"])
    np.testing.assert_array_equal(ref.bars["date"], fast_.bars["date"])
    np.testing.assert_array_equal(ref.bars["ret"], fast_.bars["ret"])
    np.testing.assert_allclose(fast_.fold_metrics[list(wf.METRICS)],
                               ref.fold_metrics[list(wf.METRICS)], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast_.bars["prediction"], ref.bars["prediction"], rtol=1e-6,
                               atol=1e-12)
    pd.testing.assert_frame_equal(ref.folds, fast_.folds)
    if model == "random_forest":
        np.testing.assert_allclose(fast_.importances, ref.importances, atol=1e-9)


def test_no_look_ahead(source_dir, tmp_path):
    """Scaling every bar after fold 1's test window changes nothing in folds 0 and 1."""
    kw = {**TINY, "assets": ["SYM000", "SYM001"]}
    base_dir, pert_dir = tmp_path / "base", tmp_path / "perturbed"
    base_dir.mkdir()
    pert_dir.mkdir()
    frames = {f.name: pd.read_csv(f, index_col="date", parse_dates=True)
              for f in source_dir.glob("*.csv")}
    for name, df in frames.items():     # both copies through the same writer
        df.to_csv(base_dir / name)
    base = {impl: wf.run(source=base_dir, impl=impl, **kw) for impl in ("numba", "reference")}
    test_end = base["numba"].folds.query("fold == 1")["test_end"].max()
    for name, df in frames.items():
        after = df.index > test_end
        df.loc[after, ["open", "high", "low", "close"]] *= 1.5
        df.loc[after, "volume"] *= 3.0
        df.to_csv(pert_dir / name)
    for impl, b in base.items():
        p = wf.run(source=pert_dir, impl=impl, **kw)
        for table in ("bars", "fold_metrics"):
            tb, tp = getattr(b, table), getattr(p, table)
            pd.testing.assert_frame_equal(tb[tb["fold"] <= 1], tp[tp["fold"] <= 1],
                                          check_exact=True)
        # the perturbation is real: the next fold's test window does move
        assert not np.array_equal(b.bars[b.bars["fold"] == 2]["ret"],
                                  p.bars[p.bars["fold"] == 2]["ret"])


# ------------------------------------------------------------------ determinism
@pytest.mark.parametrize("model,extra", [("ridge", {}), ("random_forest", {"n_estimators": 4})])
def test_bitwise_identical_across_n_jobs_and_backends(model, extra, dask_address):
    kw = {**TINY, "model": model, **extra}
    base = _bars_key(wf.run(n_jobs=1, backend="sequential", **kw))
    for backend, n_jobs, sched in [("threads", 2, None), ("loky", 2, None),
                                   ("loky", -1, None), ("dask", 2, dask_address)]:
        res = wf.run(n_jobs=n_jobs, backend=backend, scheduler=sched or "local", **kw)
        assert _bars_key(res) == base, f"{backend} n_jobs={n_jobs} differs"


def test_fold_seed_is_per_fold_not_per_worker():
    assert config.fold_seed(0, 3) == config.fold_seed(0, 3) != config.fold_seed(0, 4)
    assert config.fold_seed(1, 3) != config.fold_seed(0, 3)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw,match", [
    ({"start": "2021-01-01", "end": "2020-01-01"}, r"start \(2021-01-01\) must be before end"),
    ({"start": "2020-03-01", "end": "2020-06-30"}, "shorter than one fold"),
    ({"fold_length": 40}, "fold_length must be >= 50"),
    ({"model": "xgboost"}, "model must be one of"),
    ({"assets": ["SYM000", "NOPE"]}, r"assets: unknown symbol\(s\) \['NOPE'\]"),
    ({"assets": 0}, "assets must be >= 1"),
    ({"start": "not a date"}, "start must be a date"),
    ({"threshold": -0.1}, "threshold must be >= 0"),
    ({"impl": "gpu"}, "impl must be one of"),
    ({"backend": "mpi"}, "backend must be one of"),
    ({"source": "/no/such/dir"}, "neither a known source"),
])
def test_bad_parameters_raise_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        wf.run(**{**TINY, **kw})


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_nan_or_gap_in_used_range_raises(source_dir, tmp_path, impl):
    df = pd.read_csv(source_dir / "SYM001.csv", index_col="date", parse_dates=True)
    nan_dir, gap_dir, late_dir = (tmp_path / d for d in ("nan", "gap", "late"))
    for d in (nan_dir, gap_dir, late_dir):
        d.mkdir()
        shutil.copy(source_dir / "SYM000.csv", d)
    bad = df.copy()
    bad.loc["2019-05-06", "close"] = np.nan
    bad.to_csv(nan_dir / "SYM001.csv")
    df.drop(df.loc["2019-07-01":"2019-07-31"].index).to_csv(gap_dir / "SYM001.csv")
    late = df.copy()
    late.loc["2023-05-08", "close"] = np.nan      # after end: not in the used range
    late.to_csv(late_dir / "SYM001.csv")
    kw = {**TINY, "assets": ["SYM000", "SYM001"], "impl": impl}
    with pytest.raises(ValueError, match=r"SYM001: row \d+ \(2019-05-06\): close is NaN"):
        wf.run(source=nan_dir, **kw)
    with pytest.raises(ValueError, match=r"SYM001: gap in the data: \d+ calendar days"):
        wf.run(source=gap_dir, **kw)
    assert wf.run(source=late_dir, **kw).n_folds == 4


# ------------------------------------------------------------------ outputs and Ctrl-C
def test_outputs_are_written_when_the_run_completes(tmp_path):
    res = wf.run(output_dir=tmp_path, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(wf.OUTPUT_FILES)
    fm = pd.read_parquet(tmp_path / "fold_metrics.parquet")
    assert len(fm) == 8 and {"fold", "asset", "test_start", "sharpe"} <= set(fm.columns)
    assert len(pd.read_parquet(tmp_path / "oos_bars.parquet")) == len(res.bars) == 8 * 60
    assert list(res.equity.columns) == ["SYM000", "SYM001"] and len(res.equity) == 240


def test_overlapping_test_windows_are_stitched_once():
    res = wf.run(**{**TINY, "test_length": 90})
    assert res.equity.index.is_unique and len(res.equity) == 3 * 60 + 90


@pytest.mark.parametrize("impl,backend", [("numba", "sequential"), ("numba", "threads"),
                                          ("reference", "sequential")])
def test_interrupt_inside_a_task_leaves_no_outputs(monkeypatch, tmp_path, impl, backend):
    calls = {"n": 0}
    target = (fast, "fit_predict") if impl == "numba" else \
        (sys.modules["qbt_lib.walkforward.reference"], "features_pandas")
    original = getattr(*target)

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(*target, interrupted)
    with pytest.raises(KeyboardInterrupt):
        wf.run(impl=impl, backend=backend, n_jobs=2, output_dir=tmp_path / "out", **TINY)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_interrupt_while_caching_leaves_no_partial_cache(monkeypatch, source_dir, tmp_path):
    monkeypatch.setenv("QBT_CACHE_DIR", str(tmp_path / "cache"))
    calls = {"n": 0}
    original = fast._to_long

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:                 # the 2nd Parquet file of the cache
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(fast, "_to_long", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wf.run(source=source_dir, **{**TINY, "assets": ["SYM000", "SYM001"]})
    assert list((tmp_path / "cache" / "walkforward").iterdir()) == []
    monkeypatch.setattr(fast, "_to_long", original)
    res = wf.run(source=source_dir, **{**TINY, "assets": ["SYM000", "SYM001"]})
    assert not res.timings["cache_hit"]
    assert wf.run(source=source_dir, **{**TINY, "assets": ["SYM000", "SYM001"]}
                  ).timings["cache_hit"]


def test_ctrl_c_stops_loky_workers_and_leaves_no_outputs(tmp_path):
    """SIGINT to a run with 2 loky workers: KeyboardInterrupt, workers gone, no files."""
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    script = (
        "import sys\n"
        "from qbt_lib import walkforward as wf\n"
        "print('running', flush=True)\n"
        "wf.run(assets=2, start='2015-01-01', end='2020-12-31', model='random_forest',\n"
        "       n_estimators=400, n_jobs=2, backend='loky', output_dir=sys.argv[1],\n"
        "       progress=False)\n"
        "print('finished', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:   # wait for the pool
            time.sleep(0.5)
            workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                       if "loky" in " ".join(c.cmdline())]
        assert workers, "the loky workers never started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Interrupted" in err and "no partial output" in err, err
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"workers still running: {alive}"
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------ the anatomy (#11)
@pytest.mark.parametrize("kw,match", [
    ({"fold_lenght": 100}, r"unknown parameter for walkforward: 'fold_lenght'; known: .*"
                           r"fold_length"),
    ({"step_size": 2.5}, "step_size must be an integer"),
    ({"alpha": 0}, "alpha must be > 0"),
    ({"anchored": "sometimes"}, "anchored must be true or false"),
    ({"n_jobs": 0}, "n_jobs must not be 0"),
    ({"symbols": 2, "assets": 2}, "give symbols or assets"),
    ({"end": "soon"}, "end must be"),
])
def test_check_params_names_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        wf.check_params(**kw)


def test_check_params_accepts_papermill_floats_and_old_names():
    p = wf.check_params(fold_length=120.0, step_size="60", n_estimators=1e2, impl="fast",
                        anchored="false", start="2019-01-01")
    assert (p["fold_length"], p["step_size"], p["test_length"], p["n_estimators"]) == \
        (120, 60, 60, 100)
    assert p["impl"] == "numba" and p["anchored"] is False
    assert p["start"] == pd.Timestamp("2019-01-01")
    assert set(wf.DEFAULTS) == set(wf.CONSTRAINTS)
    assert wf.make_config(**TINY_CFG, impl="fast").impl == "numba"


def test_dispatch_table_and_impls_it_lacks():
    assert set(wf.ENGINES) == {"reference", "numba"}
    auto = wf.run(**TINY)                       # auto: numba (no GPU engine)
    assert auto.config.impl == "numba" and auto.params["impl"] == "numba"
    old = wf.run(impl="fast", **TINY)           # the old name of numba
    assert _bars_key(old) == _bars_key(auto)
    for impl in ("cupy", "numpy"):
        with pytest.raises(ValueError, match=rf"impl='{impl}': walkforward has no {impl} "
                                             r"engine; it has \['auto', 'reference', 'numba'\]"):
            wf.run(impl=impl, **TINY)


def test_result_headline_metrics_and_frame(tmp_path):
    from qbt_lib.metrics import Result
    res = wf.run(**TINY)
    assert isinstance(res, Result) and res.workload == "walkforward"
    assert res.frame() is res.fold_metrics and len(res.frame()) == 8
    h = res.headline()
    assert h.startswith("2 assets x 4 folds, ridge, numba (n_jobs=1): 8 fold-assets in ")
    assert h.endswith(f"positions {res.positions_hash()}")
    m = res.metrics()
    assert m["n_folds"] == 4 and m["n_tasks"] == 8
    assert m["positions_hash"] == res.positions_hash()
    assert set(m["headline"]) == {"throughput", "speedup_vs_reference",
                                  "parallel_efficiency", "gpu"}
    assert set(m["aggregate"]) == {"SYM000", "SYM001", "all assets"}
    table = pd.DataFrame([
        {"run": "reference (sequential)", "n_jobs": 1, "backend": "sequential",
         "seconds": 2.0, "speedup": 1.0, "fold-assets/s": 4.0, "note": ""},
        {"run": "numba, warm cache", "n_jobs": 1, "backend": "sequential", "seconds": 0.5,
         "speedup": 4.0, "fold-assets/s": 16.0, "note": ""}])
    figures = res.headline_figures(table)
    assert figures["throughput"] == "16 fold-assets/s (warm cache, n_jobs=1)"
    assert figures["speedup_vs_reference"] == "4.0x (n_jobs=1, one core both sides)"
    assert res.headline(table).startswith("throughput: 16 fold-assets/s")
    p = res.write_metrics(tmp_path, timing=table, wall_seconds=3.0)
    import json
    doc = json.loads(p.read_text())
    assert doc["workload"] == "walkforward" and doc["headline"] == figures
    assert doc["params"]["assets"] == ["SYM000", "SYM001"] and doc["wall_seconds"] == 3.0
    assert len(doc["timing"]) == 2
    with pytest.raises(ValueError, match="output_dir"):
        res.write_metrics()


def test_compare_impls_times_the_engines_on_the_same_work():
    t = wf.compare_impls(repeats=1, n_jobs=2, backend="threads", **TINY)
    assert list(t.index) == ["reference", "numba, one core", "numba, threads (2)"]
    assert t["same_answers"].all() and (t["throughput"] > 0).all()
    assert t.loc["reference", "speedup"] == 1.0
    one = wf.compare_impls(repeats=1, **TINY)        # n_jobs=1: no pool row
    assert list(one.index) == ["reference", "numba, one core"]


def test_nb_holds_the_kernels_and_features_the_wrappers():
    from numba.core.registry import CPUDispatcher
    kernels = {k for k, v in vars(nb).items() if isinstance(v, CPUDispatcher)}
    assert {"sma_nb", "ema_nb", "rsi_nb", "atr_nb", "feature_matrix_nb", "backtest_nb"} <= kernels
    assert all(k.endswith("_nb") or k == "_true_range" for k in kernels)
    assert not [k for k, v in vars(F).items() if isinstance(v, CPUDispatcher)
                and v.__module__ != nb.__name__]            # features defines none of its own
