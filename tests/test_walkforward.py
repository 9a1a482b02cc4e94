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
from qbt_lib.data import synthetic_market
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


# ================================================================== issue #15: research tools
from sklearn.base import BaseEstimator, RegressorMixin                      # noqa: E402
from sklearn.ensemble import RandomForestRegressor                          # noqa: E402
from sklearn.linear_model import Ridge                                      # noqa: E402
from sklearn.model_selection import TimeSeriesSplit, cross_val_score        # noqa: E402
from sklearn.pipeline import make_pipeline                                  # noqa: E402
from sklearn.preprocessing import StandardScaler                            # noqa: E402

from qbt_lib.walkforward import estimators, guard, portfolio as P           # noqa: E402
from qbt_lib.walkforward.featureset import resolve                          # noqa: E402


class SignOfFirst(BaseEstimator, RegressorMixin):
    """Predicts its first feature as is: with features=["ret_1"], the position on a test bar
    is the sign of the bar before's return (positions computable by hand)."""

    def fit(self, X, y):
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X)[:, 0]


def _frames(n=420, seed=11, names=("AAA", "BBB")):
    """Hand-made OHLCV frames (a dict source) on business days."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2019-01-01", periods=n)
    out = {}
    for k, name in enumerate(names):
        close = 50.0 * (k + 1) * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
        open_ = close * np.exp(0.002 * rng.standard_normal(n))
        out[name] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.003,
                                  "low": np.minimum(open_, close) * 0.997, "close": close,
                                  "volume": rng.integers(1_000, 5_000, n).astype(float)},
                                 index=idx)
    return out


HAND = dict(start="2019-12-20", fold_length=60, step_size=30, test_length=30, progress=False)


# ------------------------------------------------------------------ WalkForwardSplit
@pytest.mark.parametrize("L,T,gap,n_splits", [(50, 10, 0, 5), (30, 7, 3, 4), (100, 25, 5, 3)])
def test_splitter_matches_timeseriessplit(L, T, gap, n_splits):
    """horizon=0 on exactly L + gap + n*T samples: rolling = TimeSeriesSplit with
    max_train_size=L; anchored = TimeSeriesSplit without it (expanding from sample 0)."""
    X = np.zeros((L + gap + n_splits * T, 2))
    for anchored, tss in [(False, TimeSeriesSplit(n_splits, max_train_size=L, test_size=T,
                                                  gap=gap)),
                          (True, TimeSeriesSplit(n_splits, test_size=T, gap=gap))]:
        ours = list(wf.WalkForwardSplit(L, T, gap=gap, anchored=anchored, horizon=0).split(X))
        theirs = list(tss.split(X))
        assert len(ours) == len(theirs) == n_splits
        for (a_tr, a_te), (b_tr, b_te) in zip(ours, theirs):
            np.testing.assert_array_equal(a_tr, b_tr)
            np.testing.assert_array_equal(a_te, b_te)
    assert wf.WalkForwardSplit(L, T, gap=gap, horizon=0).get_n_splits(X) == n_splits


def test_splitter_horizon_one_is_the_workload_layout():
    """horizon=1 (the default): train = samples whose label (next bar) lies in the training
    window, test = the decisions that trade the test bars; by hand for fold 1."""
    cv = wf.WalkForwardSplit(fold_length=10, step_size=4, test_length=5, gap=2)
    (tr0, te0), (tr1, te1) = list(cv.split(np.zeros(30)))[:2]
    np.testing.assert_array_equal(tr1, np.arange(4, 13))      # bars 4..13, labels to bar 13
    np.testing.assert_array_equal(te1, np.arange(15, 20))     # trade bars 16..20
    assert cv.windows(30)[1] == (4, 14, 16, 21)
    assert len(cv.windows(30)) == cv.get_n_splits(np.zeros(30)) == 4   # (30 - 17) // 4 + 1
    # the workload's layout is this splitter's, by hand: anchored at bar 10, train to
    # 130 + 60k, 2 bars of embargo, 60 test bars, while they end by bar 400
    cfg = wf.make_config(**TINY_CFG, gap=2, anchored=True)
    w = [(10, 130, 132, 192), (10, 190, 192, 252), (10, 250, 252, 312), (10, 310, 312, 372)]
    assert config.fold_windows(10, 400, cfg) == cfg.splitter.windows(400, 10) == w
    assert config.fold_rows(w[2]) == cfg.splitter.rows(w[2]) == (slice(10, 249),
                                                                 slice(251, 311))


def test_splitter_in_cross_val_score_equals_a_manual_loop():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 4)), rng.standard_normal(300)
    cv = wf.WalkForwardSplit(fold_length=100, step_size=50, gap=3)
    scores = cross_val_score(Ridge(alpha=2.0), X, y, cv=cv, scoring="neg_mean_squared_error")
    manual = [-np.mean((Ridge(alpha=2.0).fit(X[tr], y[tr]).predict(X[te]) - y[te]) ** 2)
              for tr, te in cv.split(X)]
    assert len(scores) == 3
    np.testing.assert_allclose(scores, manual, rtol=1e-12)
    assert "WalkForwardSplit(fold_length=100" in repr(cv)


@pytest.mark.parametrize("kw,X,match", [
    (dict(fold_length=10, horizon=10), 50, "horizon .* must be below fold_length"),
    (dict(fold_length=10, step_size=0), 50, "step_size must be >= 1"),
    (dict(fold_length=40, step_size=20), 50, "X has 50 samples, fewer than one fold"),
])
def test_splitter_bad_input(kw, X, match):
    with pytest.raises(ValueError, match=match):
        wf.WalkForwardSplit(**kw).get_n_splits(np.zeros(X))


# ------------------------------------------------------------------ model = an estimator
@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_pipeline_standard_scaler_ridge_equals_builtin_ridge(impl):
    est = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    a = wf.run(impl=impl, model=est, **TINY)
    b = wf.run(impl=impl, model="ridge", **TINY)
    np.testing.assert_array_equal(a.bars["position"], b.bars["position"])
    np.testing.assert_allclose(a.bars["prediction"], b.bars["prediction"], rtol=1e-7,
                               atol=1e-13)
    assert a.config.params()["model"] == "Pipeline(StandardScaler, Ridge)"
    assert list(a.importances.columns) == list(wf.FEATURES)      # Ridge's coef_
    assert not hasattr(est[-1], "coef_")                          # the user's object unfitted


def test_estimator_random_state_from_seed_fold_asset():
    est = make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=3, random_state=7))
    s = estimators.task_seed(0, 2, "SYM001")
    assert estimators.prepare(est, s).get_params()["randomforestregressor__random_state"] == s
    assert est.get_params()["randomforestregressor__random_state"] == 7
    seeds = {estimators.task_seed(0, k, a) for k in range(3) for a in ("A", "B", None)}
    assert len(seeds) == 9 and estimators.task_seed(1, 0, "A") != estimators.task_seed(0, 0, "A")
    from sklearn.linear_model import LinearRegression
    assert estimators.prepare(LinearRegression(), 3).get_params() == \
        LinearRegression().get_params()                            # no random_state to set


def test_estimator_runs_identical_across_n_jobs_backends_and_impls(dask_address):
    est = make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=4, max_depth=4))
    kw = {**TINY, "model": est, "pool": True}
    base = wf.run(n_jobs=1, backend="sequential", **kw)
    for backend, n_jobs, sched in [("threads", 2, None), ("loky", 2, None),
                                   ("dask", 2, dask_address)]:
        res = wf.run(n_jobs=n_jobs, backend=backend, scheduler=sched or "local", **kw)
        assert _bars_key(res) == _bars_key(base), f"{backend} differs"
        assert _bars_key(res.pooled) == _bars_key(base.pooled), f"{backend} pooled differs"
    ref = wf.run(impl="reference", **kw)
    np.testing.assert_array_equal(ref.bars["prediction"], base.bars["prediction"])
    np.testing.assert_array_equal(ref.pooled.bars["prediction"], base.pooled.bars["prediction"])
    np.testing.assert_allclose(ref.portfolio.equity, base.portfolio.equity, rtol=0, atol=1e-12)
    assert base.importances.shape == (8, len(wf.FEATURES))


def test_bad_model_object():
    with pytest.raises(ValueError, match="model must be one of .* or a scikit-learn estimator"):
        wf.run(model=object(), **TINY)


# ------------------------------------------------------------------ features and the guard
def spread(open_, high, low, close, volume):
    return (high - low) / close


def future_return(open_, high, low, close, volume):          # peeks at the next bar
    return np.r_[close[1:] / close[:-1] - 1, np.nan]


def whole_series_zscore(open_, high, low, close, volume):     # peeks at every bar
    return (close - close.mean()) / close.std()


def gappy(open_, high, low, close, volume):                  # undefined on a few bars
    out = close.copy()
    out[372:380] = np.nan
    return out


@pytest.fixture(scope="module")
def user_feature_runs():
    """Each engine once on built-in, plain NumPy and Numba features."""
    from numba import njit

    @njit(cache=False)
    def range_pos(open_, high, low, close, volume):
        out = np.empty(close.shape[0])
        for i in range(close.shape[0]):
            out[i] = (close[i] - low[i]) / (high[i] - low[i]) if high[i] > low[i] else 0.5
        return out

    feats = ["ret_1", "rsi_14", spread, {"range_pos": range_pos}]
    return {impl: wf.run(impl=impl, features=feats, **TINY) for impl in ("numba", "reference")}


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_user_and_numba_features_reference_equals_fast(impl, user_feature_runs):
    res = user_feature_runs[impl]
    assert res.feature_names == ("ret_1", "rsi_14", "spread", "range_pos")
    assert list(res.importances.columns) == list(res.feature_names)
    other = user_feature_runs["reference" if impl == "numba" else "numba"]
    np.testing.assert_array_equal(res.bars["position"], other.bars["position"])
    np.testing.assert_allclose(res.bars["prediction"], other.bars["prediction"], rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_allclose(res.fold_metrics[list(wf.METRICS)], other.fold_metrics[list(wf.METRICS)],
                               rtol=0, atol=1e-9)
    assert res.config.params()["features"] == ["ret_1", "rsi_14", "spread", "range_pos"]


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_guard_catches_a_peeking_feature_at_its_first_bar(impl):
    cfg = wf.make_config(**TINY_CFG)
    n = len(cfg.frames[cfg.assets[0]])
    first_cut = int(guard.cut_points(n)[0])
    # future_return at bar t reads bar t + 1: the first cut point c shows it at bar c
    with pytest.raises(ValueError, match=rf"'future_return' looks ahead .* changed at bar "
                                         rf"{first_cut} \(\d{{4}}-\d\d-\d\d\), when the bars "
                                         rf"after bar {first_cut} "):
        wf.run(impl=impl, features=[*wf.FEATURES, future_return], **TINY)
    # a z-score over the whole series moves from bar 0 on; both named, earliest first
    with pytest.raises(ValueError, match=r"'whole_series_zscore' looks ahead .*"
                                         r"'whole_series_zscore' changed at bar 0 .*"
                                         r"'future_return' changed at bar"):
        wf.run(impl=impl, features=["ret_1", future_return, whole_series_zscore], **TINY)


def test_guard_passes_the_builtins_and_says_what_it_checked():
    cfg = wf.make_config(**TINY_CFG)
    frame = cfg.frames[cfg.assets[0]]
    for builtin in (guard.builtin_numba, guard.builtin_pandas):
        out = guard.check(resolve([*wf.FEATURES, spread]), frame, builtin)
        assert out["features"] == [*wf.FEATURES, "spread"] and len(out["cuts"]) == guard.CUTS
    res = wf.run(**TINY)
    assert 0 < res.timings["guard_s"] < res.timings["total_s"]
    # the perturbation is real: it moves every bar after the cut, and only those
    arrays = [frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    moved = guard.perturb(arrays, 100, np.random.default_rng(0))
    for a, b in zip(arrays, moved):
        assert np.array_equal(a[:101], b[:101]) and not np.any(a[101:] == b[101:])
    assert np.all(moved[1] >= np.maximum(moved[0], moved[3]))   # bars stay valid


@pytest.mark.parametrize("features,match", [
    (["nope"], "features: unknown feature 'nope'"),
    ([lambda o, h, lo, c, v: c], "has no usable name; give it one with a dict"),
    (["ret_1", "ret_1"], r"\['ret_1'\] given more than once"),
    ([], "at least one feature"),
    ([{"ret_5": spread}], "is a built-in's name"),
    ([42], "each entry must be a built-in name or a function"),
])
def test_bad_features(features, match):
    with pytest.raises(ValueError, match=match):
        wf.run(features=features, **TINY)


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_feature_wrong_shape_failing_or_undefined_in_a_test_window(impl):
    def two_columns(o, h, lo, c, v):
        return np.c_[c, c]

    def broken(o, h, lo, c, v):
        raise ZeroDivisionError("oops")

    with pytest.raises(ValueError, match=r"feature 'two_columns' returned shape \(\d+, 2\)"):
        wf.run(impl=impl, features=["ret_1", two_columns], **TINY)
    with pytest.raises(ValueError, match="feature 'broken' failed on .*ZeroDivisionError: oops"):
        wf.run(impl=impl, features=[broken], **TINY)
    with pytest.raises(ValueError, match=r"feature 'gappy' is nan for SYM000 in fold 0's test "
                                         r"window \(the decision for the bar of 20\d\d-.*"
                                         r"a test row needs every feature"):
        wf.run(impl=impl, features=["ret_1", gappy], **TINY)


# ------------------------------------------------------------------ pool=True
def test_pooled_model_by_hand_and_reference_equals_fast():
    res = wf.run(pool=True, **TINY)
    ref = wf.run(pool=True, impl="reference", **TINY)
    assert res.pooled is not None and res.pooled.pooled is None
    np.testing.assert_array_equal(res.pooled.bars["position"], ref.pooled.bars["position"])
    np.testing.assert_allclose(res.pooled.fold_metrics[list(wf.METRICS)],
                               ref.pooled.fold_metrics[list(wf.METRICS)], rtol=0, atol=1e-9)
    # fold 0 by hand: one ridge on both assets' training rows (scaled together)
    cfg = res.config
    Xs, ys, Xt = [], [], []
    for a in cfg.assets:
        df = cfg.frames[a]
        X, y = features_pandas(df)
        w = config.fold_windows(*config.check_history(df, a, cfg), cfg)[0]
        tr, te = config.fold_rows(w)
        Xtr = X.iloc[tr].dropna()
        Xs.append(Xtr.to_numpy())
        ys.append(y.loc[Xtr.index].to_numpy())
        Xt.append(X.iloc[te].to_numpy())
    sc = StandardScaler().fit(np.concatenate(Xs))
    model = Ridge(alpha=1.0).fit(sc.transform(np.concatenate(Xs)), np.concatenate(ys))
    want = model.predict(sc.transform(np.concatenate(Xt)))
    got = res.pooled.bars.query("fold == 0")["prediction"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-13)
    assert res.pooled.folds["n_train"].iloc[0] == sum(len(v) for v in ys)
    summary = res.summary()
    assert list(summary.index) == ["per-asset models", "pooled model", "buy and hold"]


def test_pool_of_one_asset_is_the_per_asset_model():
    res = wf.run(pool=True, **{**TINY, "assets": 1})
    assert _bars_key(res) == _bars_key(res.pooled)


# ------------------------------------------------------------------ positions carry, portfolio
def _hand_curve(close, start, cost):
    """Stitched pnl of SignOfFirst on ret_1 by hand: position on bar t = sign(r[t-1])."""
    r = close / np.r_[np.nan, close[:-1]] - 1
    pos = np.sign(r[start - 1:-1])
    ret = r[start:]
    change = np.abs(np.diff(pos, prepend=0.0))           # flat before the first test bar only
    return pos, ret, pos * ret - cost * change


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_positions_carry_across_folds_by_hand(impl):
    frames = _frames()
    res = wf.run(source=frames, model=SignOfFirst(), features=["ret_1"], impl=impl,
                 cost_bps=10.0, **HAND)
    cost = 10.0 / 1e4
    for a in frames:
        first = res.folds.query("asset == @a")["test_start"].iloc[0]
        last = res.folds.query("asset == @a")["test_end"].iloc[-1]
        close = frames[a]["close"].loc[:last].to_numpy()
        start = frames[a].index.get_loc(first)
        pos, ret, pnl = _hand_curve(close, start, cost)
        sleeve = res.portfolio.sleeves.query("asset == @a")
        np.testing.assert_array_equal(sleeve["position"], pos)
        np.testing.assert_allclose(sleeve["pnl"], pnl, rtol=0, atol=1e-15)
        np.testing.assert_allclose(res.equity[a].dropna(), np.cumprod(1 + pnl), rtol=1e-13)
        # per fold: the first bar pays only for a change from the previous fold's last position
        for k, g in res.bars.query("asset == @a").groupby("fold"):
            i = frames[a].index.get_loc(g["date"].iloc[0]) - start
            np.testing.assert_allclose(g["pnl"], pnl[i:i + len(g)], rtol=0, atol=1e-15)
            m = res.fold_metrics.query("asset == @a and fold == @k").iloc[0]
            prev = pos[i - 1] if i > 0 else 0.0
            assert m["trades"] == int((np.diff(pos[i:i + len(g)], prepend=prev) != 0).sum())
    # the portfolio: equal-weight sleeves (mean of growths), buy-and-hold pays one entry
    growth = pd.DataFrame({a: np.cumprod(1 + res.portfolio.sleeves.query("asset == @a")["pnl"]
                                         .to_numpy()) for a in frames})
    np.testing.assert_allclose(res.portfolio.equity["strategy"], growth.mean(axis=1), rtol=1e-13)


def test_carry_changes_the_old_flat_start_only_at_fold_boundaries():
    frames = _frames()
    res = wf.run(source=frames, model=SignOfFirst(), features=["ret_1"], cost_bps=10.0, **HAND)
    b = res.bars
    firsts = b.groupby(["fold", "asset"]).head(1)
    flat_start = 10.0 / 1e4 * np.abs(firsts["position"].astype(float))   # the old rule
    carried = firsts["pnl"] - firsts["position"] * firsts["ret"]
    later = firsts["fold"] > 0
    assert (np.abs(carried[later] + flat_start[later]) > 1e-12).any()     # boundaries differ
    np.testing.assert_allclose(carried[~later], -flat_start[~later], atol=1e-15)


@pytest.fixture(scope="module")
def holes_runs():
    """Each engine once with step_size > test_length (bars between the test windows)."""
    frames = _frames()
    return {impl: wf.run(source=frames, model=SignOfFirst(), features=["ret_1"], impl=impl,
                         cost_bps=10.0, **{**HAND, "test_length": 20})
            for impl in ("numba", "reference")}


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_holes_between_test_windows_are_flat_and_pay_the_exit(impl, holes_runs):
    """step_size > test_length: bars no window covers are flat, the first pays the exit."""
    res = holes_runs[impl]
    s = res.portfolio.sleeves.query("asset == 'AAA'").set_index("date")
    covered = s.index.isin(res.bars.query("asset == 'AAA'")["date"])
    assert (~covered).sum() == 10 * (res.n_folds - 1)
    assert (s["position"][~covered] == 0).all()
    starts = np.flatnonzero(~covered & np.r_[False, covered[:-1]])
    np.testing.assert_allclose(s["pnl"].iloc[starts],
                               -10.0 / 1e4 * np.abs(s["position"].iloc[starts - 1]), atol=1e-15)
    other = holes_runs["reference" if impl == "numba" else "numba"]
    pd.testing.assert_frame_equal(res.portfolio.sleeves, other.portfolio.sleeves,
                                  check_exact=False, rtol=0, atol=1e-15)


def _hand_sleeves():
    """Two assets, four bars, cost 1%, numbers worked out by hand in the test below."""
    dates = pd.bdate_range("2024-01-02", periods=5)          # bar 0: the decision bar
    frames = {"A": pd.DataFrame({"close": [100.0, 110.0, 104.5, 106.59, 95.931]}, index=dates),
              "B": pd.DataFrame({"close": [50.0, 51.0, 51.51, 49.4496, 51.92208]}, index=dates)}
    sleeves = {
        "A": pd.DataFrame({"position": [1.0, 1.0, 0.0, -1.0],
                           "ret": [0.10, -0.05, 0.02, -0.10],
                           "pnl": [0.09, -0.05, -0.01, 0.09]}, index=dates[1:]),
        "B": pd.DataFrame({"position": [-1.0, -1.0, -1.0, 1.0],
                           "ret": [0.02, 0.01, -0.04, 0.05],
                           "pnl": [-0.03, -0.01, 0.04, 0.03]}, index=dates[1:])}
    return frames, sleeves


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_two_asset_portfolio_by_hand(impl):
    frames, sleeves = _hand_sleeves()
    p = P.build(sleeves, frames, cost=0.01, impl=impl)
    # sleeves: A 1.09, 1.0355, 1.025145, 1.11740805; B 0.97, 0.9603, 0.998712, 1.02867336
    np.testing.assert_allclose(p.equity["strategy"],
                               [1.03, 0.9979, 1.0119285, 1.073040705], rtol=1e-14)
    # buy and hold, 1% to enter: A 1.09, 1.0355, 1.05621, 0.950589; B 1.01, 1.0201, 0.979296,
    # 1.0282608
    np.testing.assert_allclose(p.equity["buy_and_hold"],
                               [1.05, 1.0278, 1.017753, 0.9894249], rtol=1e-14)
    m = p.metrics.loc["strategy"]
    r = np.array([0.03, 0.9979 / 1.03 - 1, 1.0119285 / 0.9979 - 1, 1.073040705 / 1.0119285 - 1])
    assert m["total_return"] == pytest.approx(0.073040705, rel=1e-13)
    assert m["annual_return"] == pytest.approx(1.073040705 ** 63 - 1, rel=1e-12)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert m["sortino"] == pytest.approx(r.mean() / np.sqrt(r[1] ** 2 / 4) * np.sqrt(252),
                                         rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(0.9979 / 1.03 - 1, rel=1e-13)
    assert m["max_drawdown_bars"] == 2                 # bars 1 and 2 under the 1.03 peak
    assert m["calmar"] == pytest.approx((1.073040705 ** 63 - 1) / (1 - 0.9979 / 1.03), rel=1e-12)
    assert m["turnover"] == 3.0 and m["trades"] == 4 and m["exposure"] == 0.875
    bh = p.metrics.loc["buy_and_hold"]
    assert bh["turnover"] == 1.0 and bh["trades"] == 2 and bh["max_drawdown_bars"] == 3
    t = p.trades
    assert list(t.columns) == list(P.TRADE_COLUMNS)
    assert t[["asset", "direction", "status", "bars"]].values.tolist() == [
        ["A", "long", "closed", 2], ["B", "short", "closed", 3],
        ["A", "short", "open", 1], ["B", "long", "open", 1]]
    assert list(t["entry_date"]) == [frames["A"].index[i] for i in (0, 0, 3, 3)]
    assert list(t["exit_date"]) == [frames["A"].index[i] for i in (2, 3, 4, 4)]
    np.testing.assert_allclose(t["entry_price"], [100.0, 50.0, 106.59, 49.4496])
    np.testing.assert_allclose(t["gross_return"], [0.045, 0.009008, 0.10, 0.05], rtol=1e-12)
    # net of 1% in and (closed) 1% out
    np.testing.assert_allclose(t["return"], [1.045 * 0.9801 - 1, 1.009008 * 0.9801 - 1,
                                             1.10 * 0.99 - 1, 1.05 * 0.99 - 1], rtol=1e-12)
    assert p.assets.loc["A", "turnover"] == 3.0 and p.assets.loc["B", "trades"] == 2


def test_portfolio_fast_equals_reference_on_random_curves():
    rng = np.random.default_rng(4)
    for _ in range(20):
        r = rng.standard_normal(rng.integers(2, 300)) * 0.02
        a, b = P.curve_metrics_fast(r), P.curve_metrics_reference(pd.Series(r))
        for k in P.CURVE_METRICS:
            assert a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-15, nan_ok=True), k
    up = P.curve_metrics_fast(np.full(10, 0.01))
    assert np.isnan(up["sortino"]) and np.isnan(up["calmar"]) and up["max_drawdown"] == 0.0
    dates = pd.bdate_range("2020-01-01", periods=201)
    frame = pd.DataFrame({"close": 100 * np.exp(np.cumsum(rng.standard_normal(201) * 0.01))},
                         index=dates)
    pos = rng.choice([-1.0, 0.0, 1.0], size=200, p=[0.3, 0.2, 0.5])
    pos[50:60] = 1.0
    ret = frame["close"].pct_change().to_numpy()[1:]
    sleeve = pd.DataFrame({"position": pos, "ret": ret, "pnl": pos * ret}, index=dates[1:])
    fa = P.trades_fast("X", sleeve, frame, 0.001)
    fb = P.trades_reference("X", sleeve, frame, 0.001)
    pd.testing.assert_frame_equal(fa, fb, check_exact=False, rtol=1e-13)
    long_ = fa[fa["direction"] == "long"]
    np.testing.assert_allclose(long_["gross_return"],
                               long_["exit_price"] / long_["entry_price"] - 1, rtol=1e-10)


@pytest.mark.parametrize("extra", [{}, {"test_length": 90}, {"test_length": 40},
                                   {"anchored": True, "gap": 3, "long_only": True,
                                    "threshold": 0.001, "cost_bps": 5.0}])
def test_portfolio_reference_equals_fast(extra):
    kw = {**TINY, **extra}
    ref, fast_ = wf.run(impl="reference", **kw), wf.run(**kw)
    np.testing.assert_array_equal(ref.bars["position"], fast_.bars["position"])
    pd.testing.assert_frame_equal(ref.portfolio.sleeves, fast_.portfolio.sleeves,
                                  check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(ref.portfolio.equity, fast_.portfolio.equity,
                                  check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(ref.portfolio.metrics, fast_.portfolio.metrics,
                                  check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(ref.portfolio.trades, fast_.portfolio.trades,
                                  check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(ref.oos, fast_.oos, check_exact=False, rtol=1e-9)
    assert wf.agreement(ref, fast_)["max_portfolio_diff"] <= 1e-12


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_portfolio_on_assets_with_different_calendars(impl):
    """A sleeve keeps its last value on a date it has no bar, and 1 before its first."""
    frames, sleeves = _hand_sleeves()
    sleeves["B"] = sleeves["B"].iloc[[1, 3]]                  # B trades bars 2 and 4 only
    p = P.build(sleeves, frames, cost=0.01, impl=impl)
    b = np.array([1.0, 0.99, 0.99, 0.99 * 1.03])              # B's growth on the union dates
    a = np.array([1.09, 1.0355, 1.025145, 1.11740805])
    np.testing.assert_allclose(p.equity["strategy"], (a + b) / 2, rtol=1e-14)
    other = P.build(sleeves, frames, cost=0.01,
                    impl="numba" if impl == "reference" else "reference")
    pd.testing.assert_frame_equal(p.equity, other.equity, check_exact=False, rtol=1e-14)


def test_new_parameters_are_checked_by_params():
    p = wf.check_params(features="None", pool="yes")
    assert p["pool"] is True and [f.name for f in p["features"]] == list(wf.FEATURES)
    assert [f.name for f in wf.check_params(features=["rsi_14", spread])["features"]] == \
        ["rsi_14", "spread"]
    with pytest.raises(ValueError, match="pool"):
        wf.check_params(pool="maybe")
    with pytest.raises(ValueError, match="features: unknown feature 'rsi'"):
        wf.check_params(features=["rsi"])
    est = make_pipeline(StandardScaler(), Ridge())
    assert wf.check_params(model=est)["model"] is est
    assert wf.DEFAULTS["features"] is None and wf.DEFAULTS["pool"] is False
