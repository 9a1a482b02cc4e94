"""marketsim: numba == reference (the dispatch table), GPU code path (NumPy as xp) == CPU, no look-ahead,
determinism across backends, every strategy's pnl on hand-made days, bad input."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from qbt_lib import marketsim as ms
from qbt_lib.marketsim import gpu, models, nb, reference
from qbt_lib.marketsim.enums import (MAXDIFF_HALF_WIDTH, MAXDIFF_POINTS, MAXDIFF_SHRINK,
                                     SHARPE_MIN_STD, STRATEGIES)

# Tiny on purpose: the reference refits the model for every simulation, day and series.
SMALL = dict(simulations=4, eval_days=4, context=40, ar_order=3, num_samples=32)
ARRAYS_EXACT = ("actual", "pos", "mult")


@pytest.fixture(scope="module")
def frames():
    return ms.synthetic_universe(["SYM000", "SYM001", "BTCUSD"], years=0.5, seed=3)


@pytest.fixture(scope="module")
def numba_result(frames):
    return ms.analyze(frames, impl="numba", backend="sequential", n_jobs=1, progress=False,
                      **SMALL)


def _assert_same(a: ms.MarketSimResult, b: ms.MarketSimResult, exact: bool = False):
    assert list(a.picks["strategy"]) == list(b.picks["strategy"])
    assert list(a.ranking["symbol"]) == list(b.ranking["symbol"])
    for k, x in a.arrays.items():
        y = b.arrays[k]
        if exact or k in ARRAYS_EXACT:
            np.testing.assert_array_equal(x, y, err_msg=k)
        else:
            np.testing.assert_allclose(x, y, rtol=ms.RTOL, atol=ms.ATOL, err_msg=k)


# ------------------------------------------------------------------ bootstrap indices
def test_bootstrap_indices_are_identical_in_numpy_and_numba():
    key = models.symbol_key(7, "BTCUSD")
    k, j, s = np.meshgrid(np.arange(5), np.arange(4), np.arange(3), indexing="ij")
    streams = models.stream_keys(key, k, j, s).ravel()
    by_numba = np.array([nb.stream_key_nb(np.uint64(key), a, b, c)
                         for a, b, c in zip(k.ravel(), j.ravel(), s.ravel())], dtype=np.uint64)
    np.testing.assert_array_equal(streams, by_numba)
    idx = models.bootstrap_indices(streams, 300, 101)
    out = np.empty_like(idx)
    nb.bootstrap_indices_nb(streams, 300, 101, out)
    np.testing.assert_array_equal(idx, out)
    assert idx.min() == 0 and idx.max() == 100
    counts = np.bincount(idx.ravel(), minlength=101)
    assert counts.min() > 0.7 * counts.mean()  # roughly uniform
    assert len(np.unique(streams)) == streams.size  # one stream per (sim, day, series)


def test_symbol_key_depends_on_name_and_seed_only():
    assert models.symbol_key(0, "A") == models.symbol_key(0, "A")
    assert models.symbol_key(0, "A") != models.symbol_key(1, "A")
    assert models.symbol_key(0, "A") != models.symbol_key(0, "B")


# ------------------------------------------------------------------ engines agree
def test_numba_equals_reference(frames, numba_result):
    ref = ms.analyze(frames, impl="reference", progress=False, **SMALL)
    _assert_same(numba_result, ref)
    # the maxdiff grid and every position are the same, not just close
    assert set(numba_result.picks.index) == set(frames)


def test_numba_equals_reference_without_maxdiff_and_custom_fees(frames):
    kw = dict(SMALL, strategies=["buy_hold", "simple", "highlow", "entry_takeprofit"],
              fees={"equity": 0.001, "crypto": 0.01})
    fast = ms.analyze(frames, impl="numba", backend="sequential", progress=False, **kw)
    ref = ms.analyze(frames, impl="reference", progress=False, **kw)
    assert list(fast.table["strategy"].unique()) == ["simple", "buy_hold", "entry_takeprofit",
                                                     "highlow"]  # selection order
    _assert_same(fast, ref)


def test_plugin_forecaster_numba_equals_reference(frames):
    f = ms.EmpiricalBootstrap(window=20)
    fast = ms.analyze(frames, impl="numba", backend="threads", n_jobs=2, forecaster=f,
                      progress=False, **SMALL)
    ref = ms.analyze(frames, impl="reference", forecaster=f, progress=False, **SMALL)
    _assert_same(fast, ref)
    assert fast.params["forecaster"] == "EmpiricalBootstrap(window=20)"


def test_ar_generic_batch_interface_matches_reference_draws():
    rng = np.random.default_rng(0)
    ctx = rng.normal(0, 0.01, (3, 60))
    f = ms.ARBootstrap(4)
    streams = np.array([11, 12, 13], dtype=np.uint64)
    batch = f.sample(ctx, streams, 50)
    for r in range(3):
        np.testing.assert_allclose(batch[r], f.reference_sample(ctx[r], int(streams[r]), 50),
                                   rtol=0, atol=1e-12)


def test_gpu_code_path_with_numpy_equals_cpu(frames, numba_result):
    cfg = ms.make_config(**SMALL)
    tasks = ms.symbol_tasks({k: v.iloc[-cfg.bars_needed:] for k, v in frames.items()}, cfg,
                             ms.ARBootstrap(SMALL["ar_order"]), ms.asset_classes(frames))
    arrays = gpu.analyze_batch(tasks, chunk=2, xp=np)  # two chunks
    for k, x in numba_result.arrays.items():
        if k in ARRAYS_EXACT:
            np.testing.assert_array_equal(arrays[k], x, err_msg=k)
        else:
            np.testing.assert_allclose(arrays[k], x, rtol=ms.RTOL, atol=ms.ATOL, err_msg=k)
    best_gpu = np.argmax(arrays["metrics"].mean(axis=1)[:, :, 0], axis=1)
    assert [cfg.strategies[b] for b in best_gpu] == list(numba_result.picks["strategy"])


def test_strategy_step_is_bitwise_equal_in_numba_and_xp(numba_result):
    a = numba_result.arrays
    S, N, E = a["point"].shape[:3]
    pred = np.ascontiguousarray(a["point"][:, :, :E - 1]).reshape(S * N, E - 1, 3)
    act = np.ascontiguousarray(a["actual"][:, :, :E - 1]).reshape(S * N, E - 1, 3)
    crypto = np.repeat(numba_result.picks["crypto"].to_numpy(), N)
    fee = np.where(crypto, 0.008, 0.0000278)
    ann = np.sqrt(np.where(crypto, 365.0, 252.0))
    m, p, n, mult = gpu.evaluate_windows(np, pred, act, list(range(7)), fee, ann, crypto)
    np.testing.assert_array_equal(m.reshape(a["metrics"].shape), a["metrics"])
    np.testing.assert_array_equal(n.reshape(a["net"].shape), a["net"])
    np.testing.assert_array_equal(mult.reshape(a["mult"].shape), a["mult"])


@pytest.mark.gpu
def test_gpu_equals_cpu_on_device():
    frames = ms.synthetic_universe(12, years=1.0, seed=5)
    kw = dict(simulations=10, eval_days=5, context=96, num_samples=64)
    cpu = ms.analyze(frames, impl="numba", device="cpu", backend="sequential", progress=False,
                     **kw)
    dev = ms.analyze(frames, impl="cupy", device="gpu", gpu_chunk=5, progress=False, **kw)
    assert dev.timings["device"] == "gpu"
    _assert_same(cpu, dev)


# ------------------------------------------------------------------ no look-ahead
@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_changing_bars_at_or_after_a_day_never_changes_its_forecast(frames, impl):
    sym = "SYM001"
    base = {sym: frames[sym]}
    kw = dict(SMALL, impl=impl, progress=False)
    before = ms.analyze(base, **kw).forecasts
    dates = np.sort(before["date"].unique())
    d = dates[len(dates) // 2]
    df = frames[sym].copy()
    later = df.index >= d
    rng = np.random.default_rng(1)
    bump = np.exp(rng.normal(0, 0.05, later.sum()))
    for c in ("open", "high", "low", "close"):
        df.loc[later, c] = df.loc[later, c] * bump
    after = ms.analyze({sym: df}, **kw).forecasts
    cols = ["point", "band_lo", "band_hi"]
    upto = before["date"] <= d
    pd.testing.assert_frame_equal(before.loc[upto, cols], after.loc[upto, cols])
    # ... while forecasts of later days did see the change
    assert not np.allclose(before.loc[~upto, "point"], after.loc[~upto, "point"])


# ------------------------------------------------------------------ determinism
def test_same_results_for_every_backend_and_n_jobs(frames, numba_result, dask_address):
    runs = [dict(backend="threads", n_jobs=1), dict(backend="threads", n_jobs=2),
            dict(backend="threads", n_jobs=3), dict(backend="loky", n_jobs=2),
            dict(backend="dask", n_jobs=2, scheduler=dask_address)]
    for kw in runs:
        r = ms.analyze(frames, impl="numba", progress=False, **SMALL, **kw)
        _assert_same(numba_result, r, exact=True)
        pd.testing.assert_frame_equal(numba_result.table, r.table)
    # symbols' results do not depend on which other symbols are in the universe
    one = ms.analyze({"BTCUSD": frames["BTCUSD"]}, impl="numba", progress=False, **SMALL)
    np.testing.assert_array_equal(one.arrays["metrics"][0], numba_result.arrays["metrics"][2])


def test_warmup_compiles_everything_the_analysis_needs():
    """In a fresh process: after warm_up() the analysis adds no compiled signature."""
    code = """
import json
from numba.core.registry import CPUDispatcher
from qbt_lib import marketsim as ms
from qbt_lib.marketsim import nb
ms.warm_up()
sigs = lambda: {k: len(v.signatures) for k, v in vars(nb).items() if isinstance(v, CPUDispatcher)}
before = sigs()
frames = ms.synthetic_universe(3, years=0.5)
ms.analyze(frames, simulations=3, eval_days=3, context=30, num_samples=20, progress=False,
           backend="threads", n_jobs=2)
ms.analyze(frames, simulations=3, eval_days=3, context=30, num_samples=20, progress=False,
           forecaster=ms.EmpiricalBootstrap(10))
print(json.dumps([before, sigs()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after
    assert before["evaluate_windows_nb"] == 1 and before["ar_bootstrap_windows_nb"] == 1


# ------------------------------------------------------------------ strategies by hand
# three traded days: forecasts (close, high, low) and actual returns vs the previous close
PRED = np.array([[0.01, 0.02, -0.01], [-0.01, 0.005, -0.02], [0.02, 0.03, 0.01]])
ACT = np.array([[0.015, 0.025, -0.005], [0.01, 0.02, -0.03], [-0.01, 0.005, -0.02]])
FEE = 0.001
HAND = {  # strategy: (positions, gross returns), fee = FEE * |change of position|
    "simple": ([1, -1, 1], [0.015, -0.01, -0.01]),
    "all_signals": ([0, 0, 1], [0.0, 0.0, -0.01]),
    "buy_hold": ([1, 1, 1], [0.015, 0.01, -0.01]),
    # day 1's short call was wrong (close rose 1%): flat on day 2
    "unprofit_shutdown": ([1, -1, 0], [0.015, -0.01, 0.0]),
    # day 0 long takes profit at the forecast high; day 1 short covers at the forecast low
    "entry_takeprofit": ([1, -1, 1], [0.02, 0.02, -0.01]),
    # day 0: the low (-0.5%) never reached the forecast low (-1%): no trade
    "highlow": ([0, -1, 1], [0.0, 1 - 1.01 / 1.005, 0.99 / 1.01 - 1]),
    # offsets (0, 0): day 0 long entry at -1% not reached; day 1 |h| < |l| -> short at +0.5%,
    # covered at -2%; day 2 long entry at +1%, forecast high not reached -> exit at close
    "maxdiff": ([0, -1, 1], [0.0, 1 - 0.98 / 1.005, 0.99 / 1.01 - 1]),
}
HAND_CRYPTO = {  # long-only: short signals stay flat
    "simple": ([1, 0, 1], [0.015, 0.0, -0.01]),
    "unprofit_shutdown": ([1, 0, 1], [0.015, 0.0, -0.01]),
    "entry_takeprofit": ([1, 0, 1], [0.02, 0.0, -0.01]),
    "highlow": ([0, 0, 1], [0.0, 0.0, 0.99 / 1.01 - 1]),
    "maxdiff": ([0, 0, 1], [0.0, 0.0, 0.99 / 1.01 - 1]),
}


def _expected(pos, gross):
    prev = [0] + pos[:-1]
    return [g - FEE * abs(p - q) for p, q, g in zip(pos, prev, gross)]


def _all_engines(strategy, long_only):
    sid = STRATEGIES.index(strategy)
    ref = reference.strategy_window(strategy, PRED, ACT, FEE, long_only)
    p_nb = np.empty(3, np.int8)
    n_nb = np.empty(3)
    nb.strategy_window_nb(sid, PRED, ACT, FEE, long_only, 0.0, 0.0, p_nb, n_nb)
    p_xp, n_xp = gpu.strategy_window(np, sid, PRED[None], ACT[None], np.array([FEE]),
                                     np.array([long_only]))
    return ref, (list(p_nb), list(n_nb)), (list(p_xp[0]), list(n_xp[0]))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("long_only", [False, True], ids=["equity", "crypto"])
def test_strategy_pnl_on_hand_made_days(strategy, long_only):
    pos, gross = (HAND_CRYPTO if long_only else HAND).get(strategy, HAND[strategy])
    want = _expected(pos, gross)
    for got_pos, got_net in _all_engines(strategy, long_only):
        assert [int(p) for p in got_pos] == pos
        assert got_net == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_fee_on_a_flip_is_paid_twice_and_metrics_by_hand():
    pos, net = reference.strategy_window("simple", PRED, ACT, FEE, False)
    assert net == pytest.approx([0.015 - FEE, -0.01 - 2 * FEE, -0.01 - 2 * FEE])
    m = reference.window_metrics(pos, net, math.sqrt(252))
    mean = sum(net) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in net) / 2)
    assert m == pytest.approx([(1 + net[0]) * (1 + net[1]) * (1 + net[2]) - 1, mean,
                               mean / std * math.sqrt(252), 1 / 3, 3])
    out = np.empty(5)
    nb.window_metrics_nb(np.array(pos, np.int8), np.array(net), math.sqrt(252),
                         SHARPE_MIN_STD, out)
    assert list(out) == m
    flat = reference.window_metrics([0, 0, 0], [0.0, 0.0, 0.0], 15.0)
    assert flat == [0.0, 0.0, 0.0, 0.0, 0.0]  # no spread: Sharpe 0, no position: hit rate 0


def test_maxdiff_grid_finds_the_best_offsets_and_engines_agree():
    # one long day: entering lower (m_l down to -0.015 still fills) and exiting higher (m_h
    # up to +0.01 still reached) both pay, so the optimum is near (0.01, -0.015)
    pred = np.array([[0.0, 0.01, -0.005]])
    act = np.array([[0.0, 0.02, -0.02]])
    pts = np.array(MAXDIFF_POINTS, dtype=np.int64)
    m_nb = nb.maxdiff_grid_nb(pred, act, 0.0, False, MAXDIFF_HALF_WIDTH, MAXDIFF_SHRINK, pts)
    m_ref = reference.maxdiff_offsets(pred, act, 0.0, False)
    m_xp = gpu.maxdiff_offsets(np, pred[None], act[None], np.array([0.0]), np.array([False]))
    assert m_nb == m_ref == (float(m_xp[0][0]), float(m_xp[1][0]))
    m_h, m_l = m_ref
    assert 0.0 < m_h <= 0.01 and -0.015 <= m_l < 0.0
    pnl = reference.strategy_window("maxdiff", pred, act, 0.0, False, m_h, m_l)[1][0]
    assert pnl > 1.02 / 0.98 - 1 - 0.004  # within the grid's resolution of the optimum
    assert pnl > reference.strategy_window("maxdiff", pred, act, 0.0, False)[1][0]


# ------------------------------------------------------------------ data, outputs
def test_synthetic_universe_marks_a_few_crypto():
    names = ms.synthetic_names(30)
    assert len(names) == 30 and sum(ms.is_crypto(s) for s in names) == 3
    assert ms.is_crypto("BTCUSD") and ms.is_crypto("eth-usd") and not ms.is_crypto("SPY")
    u = ms.synthetic_universe(5)
    assert len(next(iter(u.values()))) == 4 * 252


def test_crypto_is_long_only_with_its_fee(numba_result):
    sims = numba_result.simulations
    assert numba_result.picks.loc["BTCUSD", "crypto"]
    i = list(numba_result.picks.index).index("BTCUSD")
    assert (numba_result.arrays["pos"][i] >= 0).all()
    assert (numba_result.arrays["pos"][:i] < 0).any()
    assert set(sims["strategy"].unique()) == set(STRATEGIES)


def test_write_results_parquet_and_metrics(numba_result, tmp_path):
    out = ms.write_results(numba_result, tmp_path, headline={"throughput": "x"})
    for name in ("summary", "picks", "ranking", "simulations", "forecasts"):
        back = pd.read_parquet(out[name])
        assert len(back) > 0
    m = json.loads(out["metrics"].read_text())
    assert m["picks"] == dict(numba_result.picks["strategy"])
    assert not list(tmp_path.glob("*.tmp"))


def test_write_results_leaves_nothing_when_interrupted(numba_result, tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    calls = {"n": 0}
    real = pq.write_table

    def flaky(*a, **k):  # Ctrl-C while the third table is being written
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pq, "write_table", flaky)
    with pytest.raises(KeyboardInterrupt):
        ms.write_results(numba_result, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_timing_table_has_the_seed_columns():
    st = {"cold": {"total_s": 5.0}, "cached": {"total_s": 0.5}}
    t = ms.timing_table(st, {"numba sequential": 1.0, "numba threads (2)": 0.6,
                             "cupy (GPU)": 0.2}, reference_s=90)
    assert list(t.columns) == ["cold start s", "cached start s", "analysis s", "first run s",
                               "subsequent run s"]
    assert t.loc["numba sequential", "first run s"] == 6.0
    assert t.loc["numba sequential", "subsequent run s"] == 1.5
    assert np.isnan(t.loc["cupy (GPU)", "cold start s"])  # no Numba start-up on the GPU


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw,match", [
    (dict(simulations=0), "simulations must be >= 1"),
    (dict(eval_days=1), "eval_days must be >= 2"),
    (dict(context=12, ar_order=3), r"context \(12\) must be >= ar_order \+ 10 \(13\)"),
    (dict(strategies=["simple", "moon"]), "strategies must be one of"),
    (dict(simulations=1.5), "simulations must be an integer"),
    (dict(fees={"forex": 0.1}), "fees: unknown symbol class"),
    (dict(impl="cuda"), "impl must be one of"),
])
def test_bad_parameters_raise_naming_them(frames, kw, match):
    with pytest.raises(ValueError, match=match):
        ms.analyze(frames, progress=False, **{**SMALL, **kw})


def test_history_too_short_names_the_symbol(frames):
    short = {"SYM000": frames["SYM000"].iloc[:40]}
    with pytest.raises(ValueError, match=r"SYM000: history too short: 40 bars, needs context "
                                         r"\+ simulations \+ eval_days = 48"):
        ms.analyze(short, progress=False, **SMALL)


def test_nan_price_names_symbol_column_and_row(frames):
    df = frames["SYM001"].copy()
    row = len(df) - 20                       # inside the 48 bars the analysis reads
    df.iloc[row, df.columns.get_loc("close")] = np.nan
    with pytest.raises(ValueError, match=rf"SYM001: row {row} \(\d{{4}}-\d\d-\d\d\): "
                                         r"close is NaN or inf"):
        ms.analyze({"SYM001": df}, progress=False, **SMALL)
    # a bad bar before the bars the analysis reads is not an error: it is never used
    early = frames["SYM001"].copy()
    early.iloc[17, early.columns.get_loc("close")] = np.nan
    ok = ms.analyze({"SYM001": early}, progress=False, **SMALL)
    clean = ms.analyze({"SYM001": frames["SYM001"]}, progress=False, **SMALL)
    pd.testing.assert_frame_equal(ok.table, clean.table)


def test_gpu_without_device_or_with_plugin_model_is_refused(frames):
    with pytest.raises(ValueError, match="device='gpu' runs the built-in AR forecaster"):
        ms.analyze(frames, device="gpu", forecaster=ms.EmpiricalBootstrap(20), progress=False,
                   **SMALL)
    from qbt_lib.device import gpu_available
    if not gpu_available():
        with pytest.raises(RuntimeError, match="no GPU is usable"):
            ms.analyze(frames, device="gpu", progress=False, **SMALL)


# ------------------------------------------------------------------ the anatomy (#11)
@pytest.mark.parametrize("kw,match", [
    (dict(simulatons=4), r"unknown parameter for marketsim: 'simulatons'; known: .*simulations"),
    (dict(num_samples=5), "num_samples must be >= 10"),
    (dict(impl="gpu"), "impl must be one of"),
    (dict(device="tpu"), "device must be one of"),
    (dict(backend="mpi"), "backend must be one of"),
    (dict(warm_up="maybe"), "warm_up must be true or false"),
    (dict(forecaster="ar"), "forecaster must be a marketsim.Forecaster"),
    (dict(warmup=True, warm_up=False), "give warm_up or warmup"),
    (dict(gpu_chunk=0), "gpu_chunk must be None, or >= 1"),
])
def test_check_params_names_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        ms.check_params(**{**SMALL, **kw})


def test_check_params_accepts_papermill_floats_and_old_names():
    p, cfg = ms.check_params(simulations=4.0, eval_days="4", context=40.0, ar_order=3,
                             num_samples=3.2e1, n_jobs=-1.0, impl="FAST", warmup="false",
                             strategies="simple, maxdiff")
    assert (cfg.simulations, cfg.eval_days, cfg.context, cfg.num_samples) == (4, 4, 40, 32)
    assert p["impl"] == "auto" and p["warm_up"] is False and p["n_jobs"] == -1
    assert cfg.strategies == ("simple", "maxdiff") and cfg.bars_needed == 48
    assert type(p["forecaster"]) is ms.ARBootstrap and p["forecaster"].order == 3
    assert set(ms.DEFAULTS) == set(ms.CONSTRAINTS)


def test_dispatch_table_every_cpu_impl_gives_the_same_answers(frames, numba_result):
    assert set(ms.ENGINES) == {"reference", "numpy", "numba", "cupy"}
    for impl in ("reference", "numpy"):
        r = ms.run(frames, impl=impl, device="cpu", progress=False, **SMALL)
        assert r.timings["impl"] == impl and r.timings["device"] == "cpu"
        assert ms.same_answers(numba_result, r), impl
    # cupy asked for on the CPU runs the same array code on NumPy
    r = ms.run(frames, impl="cupy", device="cpu", progress=False, **SMALL)
    assert r.timings["impl"] == "numpy" and ms.same_answers(numba_result, r)
    # the old name of the fast paths: auto, the GPU when one is usable, else numba
    r = ms.run(frames, impl="fast", device="cpu", progress=False, **SMALL)
    assert r.timings["impl"] == "numba"
    _assert_same(numba_result, r, exact=True)


def test_dispatch_plugin_forecaster_names_the_engines_it_has(frames):
    with pytest.raises(ValueError, match=r"impl='numpy': marketsim with the plug-in forecaster "
                                         r"EmpiricalBootstrap\(window=20\) has no numpy "
                                         r"engine; it has \['auto', 'reference', 'numba'\]"):
        ms.run(frames, impl="numpy", forecaster=ms.EmpiricalBootstrap(20), progress=False,
               **SMALL)
    with pytest.raises(ValueError, match=r"impl='reference' runs on the CPU"):
        ms.run(frames, impl="reference", device="gpu", progress=False, **SMALL)


def test_result_headline_metrics_and_frame(numba_result, tmp_path):
    from qbt_lib.metrics import Result
    r = numba_result
    assert isinstance(r, Result) and r.workload == "marketsim"
    assert r.frame() is r.ranking
    h = r.headline()
    top = r.ranking.iloc[0]
    assert h.startswith("3 symbols x 4 simulations, 7 strategies: numba on cpu")
    assert f"top pick {top['symbol']} {top['strategy']}" in h
    m = r.metrics()
    assert m["picks"] == dict(r.picks["strategy"]) and m["digest"] == ms.digest(r)
    assert set(m["headline"]) == {"throughput", "speedup_vs_reference",
                                  "parallel_efficiency", "gpu"}
    assert m["headline"]["throughput"].endswith("symbol-sims/s (numba on cpu, sequential, "
                                                "n_jobs=1)")
    p = r.write_metrics(tmp_path, wall_seconds=1.5)
    doc = json.loads(p.read_text())
    assert doc["workload"] == "marketsim" and doc["wall_seconds"] == 1.5
    assert doc["ranking"] == list(r.ranking["symbol"])
    with pytest.raises(ValueError, match="output_dir"):
        r.write_metrics()


def test_compare_impls_times_every_engine_on_the_same_work(frames, numba_result, tmp_path):
    # the CPU engines only (a GPU machine would add a cupy row: timed by the device run)
    t = ms.compare_impls(frames, n_jobs=2, backends=("sequential", "threads"), repeats=1,
                         include_gpu=False, **SMALL)
    assert list(t["work"]) == ["reference subset"] * 2 + ["universe"] * 2
    assert list(t["impl_name"]) == ["reference", "numba", "numba", "numba"]
    assert list(t["symbols"]) == [1, 1, 3, 3]
    assert t["same_answers"].all()
    assert (t["throughput"] > 0).all() and list(t.index)[2:] == ["numba sequential",
                                                                 "numba threads (2)"]
    figures = numba_result.headline_figures(t)
    assert figures["speedup_vs_reference"].endswith("(numba vs reference, one core each, "
                                                    "1 symbol(s))")
    assert figures["parallel_efficiency"].startswith("numba threads (2): ")
    assert figures["gpu"] == "no GPU"
    assert numba_result.headline(t).startswith("throughput: ")
    table = ms.timing_table({"cold": {"total_s": 2.0}, "cached": {"total_s": 0.5}}, t)
    assert list(table.index) == ["reference (Python/pandas)", "numba sequential",
                                 "numba threads (2)"]
    # the reference's universe time is extrapolated from its throughput on its subset
    ref = t.loc["reference"]
    assert table.loc["reference (Python/pandas)", "analysis s"] == pytest.approx(
        3 * SMALL["simulations"] / ref["throughput"])
    # the old name: the universe block as {configuration: seconds}
    old = ms.compare_engines(frames, n_jobs=2, backends=("sequential",), repeats=1, **SMALL)
    assert list(old) == ["numba sequential"] + (["cupy (GPU)"] if "cupy (GPU)" in old else [])
    out = ms.write_results(numba_result, tmp_path, timing=t)
    doc = json.loads(out["metrics"].read_text())
    assert doc["headline"] == figures and len(doc["compare_impls"]) == 4
    assert len(doc["timing_table"]) == 3


@pytest.mark.gpu
def test_compare_impls_adds_the_cupy_row_on_a_gpu(frames, numba_result):
    """On a GPU machine the universe block gains one CuPy row, timed on the same work and
    with the same answers (within marketsim's tolerance) as numba sequential."""
    t = ms.compare_impls(frames, n_jobs=1, backends=("sequential",), repeats=1, **SMALL)
    uni = t[t["work"] == "universe"]
    assert list(uni["impl_name"]) == ["numba", "cupy"]
    assert list(uni.index) == ["numba sequential", "cupy (GPU)"]
    assert uni["same_answers"].all() and (uni["throughput"] > 0).all()
    assert numba_result.headline_figures(t)["gpu"].endswith("x one CPU thread)")


def test_run_writes_its_outputs_when_given_output_dir(frames, numba_result, tmp_path):
    r = ms.run(frames, impl="numba", backend="sequential", progress=False,
               output_dir=tmp_path / "out", **SMALL)
    _assert_same(numba_result, r, exact=True)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["forecasts.parquet", "metrics.json", "picks.parquet", "ranking.parquet",
                     "simulations.parquet", "summary.parquet"]



# ================================================================== research (#15 items 6-9)
from numba import njit  # noqa: E402

from qbt_lib.marketsim import api, examples, fast, oos, reference_research, user  # noqa: E402
from qbt_lib.marketsim.results import summary_tables  # noqa: E402

SMALL_OOS = dict(SMALL, oos_days=5, forecast_next=True)


def my_simple(forecast, band, history):
    """The built-in ``simple`` written as an own strategy (plain NumPy)."""
    return np.sign(forecast[:, 0]).astype(np.int8)


@njit
def my_simple_nb(forecast, band, history):
    out = np.zeros(forecast.shape[0], np.int8)
    for t in range(forecast.shape[0]):
        c = forecast[t, 0]
        out[t] = 1 if c > 0 else (-1 if c < 0 else 0)
    return out


def never(forecast, band, history):
    return np.zeros(forecast.shape[0], np.int8)


def peek_next_forecast(forecast, band, history):
    out = np.zeros(forecast.shape[0], np.int8)
    out[:-1] = np.sign(forecast[1:, 0])
    return out


def peek_from_day_5(forecast, band, history):
    out = np.sign(forecast[:, 0])
    out[5:] = np.sign(history[5:, 0])  # from day 5 on: today's outcome
    return np.nan_to_num(out).astype(np.int8)


@pytest.fixture(scope="module")
def oos_result(frames):
    return ms.analyze(frames, impl="numba", backend="sequential", progress=False,
                      user_strategies=[examples.follow_hits], **SMALL_OOS)


# ------------------------------------------------------------------ own strategies
@pytest.mark.parametrize("fn", [my_simple, my_simple_nb], ids=["python", "njit"])
@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_own_strategy_equal_to_simple_scores_like_the_builtin(frames, fn, impl):
    """``sign(forecast close)`` as an own strategy is the built-in simple, bit for bit:
    the same fee, metric and ranking code (crypto's short days taken flat as well)."""
    r = ms.analyze(frames, impl=impl, backend="sequential", progress=False,
                   strategies=["simple", "buy_hold"], user_strategies={"mine": fn}, **SMALL)
    assert r.strategies == ["simple", "buy_hold", "mine"]
    a = r.arrays
    for k in ("metrics", "pos", "net"):
        np.testing.assert_array_equal(a[k][:, :, 2], a[k][:, :, 0], err_msg=k)
    t = r.table.set_index(["symbol", "strategy"])
    for sym in frames:
        assert t.loc[(sym, "mine"), "total_return"] == t.loc[(sym, "simple"), "total_return"]
    # ties go to the earlier strategy: "mine" is never picked over "simple"
    assert "mine" not in set(r.picks["strategy"])


def test_own_strategy_on_hand_made_days():
    """follow_hits on the three hand-made days: day 0 flat (no call yet), day 1 the call of
    day 0 (+1, close +1.5%) was right -> short (forecast -1%), day 2 the call of day 1 (-1,
    close +1%) was wrong -> flat."""
    s = user.resolve([examples.follow_hits])
    band = np.full_like(PRED, 0.01)
    fast_ = user.evaluate_windows(s, PRED[None], band[None], ACT[None], FEE, 15.0, False)
    ref = reference_research.user_windows(s, PRED[None], band[None], ACT[None], FEE, 15.0,
                                          False)
    want_pos = [0, -1, 0]
    want_net = [0.0, -0.01 - FEE, 0.0 - FEE]
    for out in (fast_, ref):
        assert list(out["pos"][0, 0]) == want_pos
        assert list(out["net"][0, 0]) == pytest.approx(want_net, abs=1e-15)
        m = out["metrics"][0, 0]
        assert m[0] == pytest.approx((1 - 0.01 - FEE) * (1 - FEE) - 1)
        assert m[3] == 0.0 and m[4] == 2  # one day held, lost; two position changes
    np.testing.assert_array_equal(fast_["metrics"], ref["metrics"])
    crypto = user.evaluate_windows(s, PRED[None], band[None], ACT[None], FEE, 15.0, True)
    assert list(crypto["pos"][0, 0]) == [0, 0, 0]  # long-only: the short is taken flat


@pytest.mark.parametrize("fn,day", [(examples.peek, 0), (peek_next_forecast, 0),
                                    (peek_from_day_5, 5)])
def test_lookahead_guard_names_the_strategy_and_first_day(frames, fn, day):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"user strategy '{name}' looks ahead: its position "
                                         rf"on day {day} "):
        ms.analyze(frames, progress=False, user_strategies=[fn], **SMALL)


def test_lookahead_guard_passes_causal_strategies():
    for fn in (examples.confident, examples.follow_hits, my_simple, my_simple_nb, never):
        user.check_lookahead(user.resolve([fn])[0])


@pytest.mark.parametrize("spec,match", [
    ({"simple": my_simple}, "'simple' is a built-in strategy's name"),
    ("no_such_module:fn", "cannot import 'no_such_module:fn'"),
    ("qbt_lib.marketsim.examples", "is not a 'module:function' import path"),
    ({"bad name": my_simple}, "must be an identifier"),
    ([my_simple, my_simple], "'my_simple' is given twice"),
    (42, "user_strategies must be a function"),
])
def test_bad_user_strategies_are_named(frames, spec, match):
    with pytest.raises(ValueError, match=match):
        ms.analyze(frames, progress=False, user_strategies=spec, **SMALL)


def test_bad_positions_are_named(frames):
    def twos(f, b, h):
        return np.full(f.shape[0], 2)

    def short(f, b, h):
        return np.zeros(f.shape[0] - 1)
    with pytest.raises(ValueError, match=r"'twos': positions must be -1, 0 or 1; day 0"):
        ms.analyze(frames, progress=False, user_strategies=[twos], **SMALL)
    with pytest.raises(ValueError, match=r"'short' returned positions of shape \(63,\)"):
        ms.analyze(frames, progress=False, user_strategies=[short], **SMALL)


def test_user_strategies_by_import_path_and_refused_on_gpu(frames):
    r = ms.analyze(frames, progress=False, backend="sequential",
                   user_strategies="qbt_lib.marketsim.examples:confident, "
                                   "qbt_lib.marketsim.examples:follow_hits", **SMALL)
    assert r.strategies[-2:] == ["confident", "follow_hits"]
    assert r.timings["device"] == "cpu" and r.timings["guard_s"] > 0
    with pytest.raises(ValueError, match=r"device='gpu' runs the built-in strategies only; "
                                         r"user strategies \['confident'\]"):
        ms.analyze(frames, device="gpu", progress=False, user_strategies=[examples.confident],
                   **SMALL)


# ------------------------------------------------------------------ never traded
def test_never_traded_is_flagged_in_the_tables_and_ranking(frames):
    r = ms.analyze(frames, progress=False, backend="sequential", strategies=["buy_hold"],
                   user_strategies=[never], **SMALL)
    t = r.table.set_index(["symbol", "strategy"])
    assert not t.loc[(slice(None), "buy_hold"), "never_traded"].any()
    assert t.loc[(slice(None), "never"), "never_traded"].all()
    assert r.never_traded == ["never"]
    s = r.strategy_summary()
    assert bool(s.loc["never", "never_traded"]) and not s.loc["buy_hold", "never_traded"]
    # where flat beat buy-and-hold the pick is the strategy that never traded: flagged
    flat_won = r.picks["strategy"] == "never"
    assert flat_won.any() and (~flat_won).any()
    assert (r.ranking.set_index("symbol")["never_traded"] == flat_won).all()
    assert s.loc["never", "picked_by"] == flat_won.sum()


def test_never_traded_by_hand():
    # 2 symbols x 1 simulation x 2 strategies x 2 days; B picks strategy "b" that never
    # held a position (its 0 beats a loss)
    pos = np.zeros((2, 1, 2, 2), np.int8)
    pos[0, 0, 0] = [1, 1]
    pos[1, 0, 0] = [0, 1]
    metrics = np.zeros((2, 1, 2, 5))
    metrics[0, 0, 0, 0] = 0.02
    metrics[1, 0, 0, 0] = -0.01
    table, picks, ranking = summary_tables(["A", "B"], {"metrics": metrics, "pos": pos},
                                               ["a", "b"], np.array([False, False]))
    assert list(table["never_traded"]) == [False, True, False, True]
    assert list(picks["strategy"]) == ["a", "b"]
    assert list(ranking["never_traded"]) == [False, True]


# ------------------------------------------------------------------ the walk by hand
def _hand_arrays():
    """G = 4 simulations (lookback N = 2, D = 2 walk days + tomorrow), E = 2 (one traded
    day + the next-day forecast), strategies simple and buy_hold."""
    G, E = 4, 2
    point = np.zeros((G, E, 3))
    actual = np.zeros((G, E, 3))
    # the next-day (window position E-1) forecasts/actuals of simulations 3, 2, 1, 0
    point[3, 1] = [0.004, 0.01, -0.01]
    actual[3, 1] = [-0.01, 0.0, -0.02]  # the day before the walk
    point[2, 1] = [0.01, 0.02, -0.01]   # walk day 0
    actual[2, 1] = [0.02, 0.03, -0.005]
    point[1, 1] = [-0.01, 0.01, -0.02]  # walk day 1
    actual[1, 1] = [0.03, 0.04, -0.01]
    point[0, 1] = [0.005, 0.02, -0.01]  # tomorrow
    actual[0, 1] = np.nan
    metrics = np.zeros((G, 2, 5))
    metrics[:, :, 0] = [[0.01, 0.02], [0.03, 0.00], [-0.01, 0.01], [0.00, 0.05]]
    return {"point": point, "lo": point - 0.001, "hi": point + 0.002, "actual": actual,
            "metrics": metrics, "mult": np.zeros((G, 2))}


@pytest.mark.parametrize("walk", [oos.walk_symbol, reference_research.walk_symbol],
                         ids=["numba", "reference"])
def test_walk_by_hand(walk):
    fee = 0.001
    w = walk(_hand_arrays(), strategies=["simple", "buy_hold"], user=(), lookback=2, days=2,
             fee=fee, ann=10.0, long_only=False)
    # day 0 picks from simulations 2, 3: simple (-0.01 + 0)/2, buy_hold (0.01 + 0.05)/2;
    # day 1 from 1, 2: simple 0.01, buy_hold 0.005; tomorrow from 0, 1: simple 0.02, 0.01
    np.testing.assert_allclose(w["score"], [[-0.005, 0.03], [0.01, 0.005], [0.02, 0.01]])
    assert list(w["pick"]) == [1, 0, 0]
    assert w["curves"] == ["pick", "simple", "buy_hold"]
    # pick: day 0 buy_hold long (+2%, entry fee), day 1 simple short (-3%, flip: 2 fees)
    want = {"pick": ([1, -1], [0.02 - fee, -0.03 - 2 * fee]),
            "simple": ([1, -1], [0.02 - fee, -0.03 - 2 * fee]),
            "buy_hold": ([1, 1], [0.02 - fee, 0.03])}
    for c, (p, n) in enumerate(want.values()):
        assert list(w["pos"][c]) == p
        assert list(w["net"][c]) == pytest.approx(n, abs=1e-15)
    m = w["metrics"]
    assert m[0, 0] == pytest.approx((1.02 - fee) * (0.97 - 2 * fee) - 1)  # total return
    assert m[0, 4] == 2 and m[2, 4] == 1                                 # position changes
    assert m[0, 5] == pytest.approx(0.03 + 2 * fee)                      # max drawdown
    assert m[2, 5] == 0.0
    # tomorrow: simple on a +0.5% forecast -> long from the last close
    assert w["next_user"] == {}
    assert oos.next_order("simple", *w["fc"][-1], False)[:2] == (1, "close")


@pytest.mark.parametrize("walk", [oos.walk_symbol, reference_research.walk_symbol],
                         ids=["numba", "reference"])
def test_walk_unprofit_shutdown_sees_the_day_before_the_walk(walk):
    arr = _hand_arrays()
    arr["metrics"] = arr["metrics"][:, :1]
    w = walk(arr, strategies=["unprofit_shutdown"], user=(), lookback=2, days=2,
             fee=0.0, ann=10.0, long_only=False)
    # the day before the walk: call +1 (forecast +0.4%), close -1% -> wrong -> flat on
    # day 0; day 0's call +1 was right (+2%) -> day 1 short (forecast -1%) -> -3%
    assert list(w["pos"][1]) == [0, -1]
    assert list(w["net"][1]) == [0.0, -0.03]
    assert bool(w["prev_wrong_next"])  # day 1's short call lost: tomorrow flat
    assert oos.next_order("unprofit_shutdown", 0.005, 0.02, -0.01, False, True)[0] == 0


def test_walk_fast_equals_reference_on_real_arrays(frames, oos_result):
    ref = ms.analyze(frames, impl="reference", progress=False,
                     user_strategies=[examples.follow_hits], **SMALL_OOS)
    _assert_same(oos_result, ref)
    for a, b in zip(oos_result.oos.walks, ref.oos.walks):
        np.testing.assert_array_equal(a["pick"], b["pick"])
        np.testing.assert_array_equal(a["pos"], b["pos"])
        np.testing.assert_allclose(a["net"], b["net"], rtol=ms.RTOL, atol=ms.ATOL)
        np.testing.assert_allclose(a["metrics"], b["metrics"], rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(oos_result.next_session[["strategy", "position", "entry"]],
                                  ref.next_session[["strategy", "position", "entry"]])


@pytest.mark.parametrize("long_only", [False, True], ids=["equity", "crypto"])
def test_walk_kernels_equal_reference_bitwise(frames, long_only):
    """On the same extended arrays the walk kernels and the plain-Python walk agree bit
    for bit (same day rule, same sums in the same order)."""
    cfg = ms.make_config(**SMALL)
    need = oos.extension_bars(cfg.context, cfg.simulations, cfg.eval_days, 7)
    prices = np.stack([frames["SYM000"][c].to_numpy() for c in ("close", "high", "low")])
    out = fast.analyze_symbol(oos.with_placeholder(prices[:, -need:]),
                              symbol_key=models.symbol_key(0, "SYM000"),
                              simulations=cfg.simulations + 7, eval_days=cfg.eval_days,
                              context=cfg.context, num_samples=cfg.num_samples,
                              strategy_ids=np.arange(7), fee=0.001, ann=15.0,
                              long_only=long_only, forecaster=ms.ARBootstrap(cfg.ar_order))
    kw = dict(strategies=list(STRATEGIES), user=(), lookback=cfg.simulations, days=7,
              fee=0.001, ann=15.0, long_only=long_only)
    a, b = oos.walk_symbol(out, **kw), reference_research.walk_symbol(out, **kw)
    for k in ("pick", "score", "pos", "net", "metrics", "fc", "act", "mult"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["prev_wrong_next"] == b["prev_wrong_next"]
    assert a["pos"].shape == (8, 7)  # the pick + 7 strategies over 7 days


# ------------------------------------------------------------------ walk honesty
def test_the_placeholder_bar_is_never_read(frames):
    cfg = ms.make_config(**SMALL)
    need = oos.extension_bars(cfg.context, cfg.simulations, cfg.eval_days, 3)
    prices = np.stack([frames["SYM001"][c].to_numpy() for c in ("close", "high", "low")])
    kw = dict(symbol_key=7, simulations=cfg.simulations + 3, eval_days=cfg.eval_days,
              context=cfg.context, num_samples=cfg.num_samples, strategy_ids=np.arange(7),
              fee=0.001, ann=15.0, long_only=False, forecaster=ms.ARBootstrap(cfg.ar_order))
    nan = fast.analyze_symbol(oos.with_placeholder(prices[:, -need:]), **kw)
    filled = np.column_stack([prices[:, -need:], [200.0, 250.0, 150.0]])
    other = fast.analyze_symbol(filled, **kw)
    for k, x in nan.items():
        if k == "actual":
            assert np.isnan(x[0, -1]).all() and np.isfinite(other[k][0, -1]).all()
            x, y = x.copy(), other[k].copy()
            x[0, -1] = y[0, -1] = 0.0
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(x, other[k], err_msg=k)


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_walk_decisions_never_see_the_day_they_trade(frames, impl):
    """Changing the bars from walk day d on leaves the pick and the position of every walk
    day up to d, and the net returns before d, unchanged (the day's own return changes)."""
    sym = "SYM000"
    kw = dict(SMALL_OOS, impl=impl, progress=False, backend="sequential",
              user_strategies=[examples.follow_hits])
    before = ms.analyze({sym: frames[sym]}, **kw)
    dates = before.oos.dates[0]
    d = dates[2]
    df = frames[sym].copy()
    later = df.index >= d
    bump = np.exp(np.random.default_rng(4).normal(0, 0.05, later.sum()))
    for c in ("open", "high", "low", "close"):
        df.loc[later, c] = df.loc[later, c] * bump
    after = ms.analyze({sym: df}, **kw)
    a, b = before.oos.daily, after.oos.daily
    upto, prior = a["date"] <= d, a["date"] < d
    pd.testing.assert_series_equal(a.loc[upto, "strategy"], b.loc[upto, "strategy"])
    pd.testing.assert_series_equal(a.loc[upto, "position"], b.loc[upto, "position"])
    pd.testing.assert_series_equal(a.loc[prior, "net"], b.loc[prior, "net"])
    assert not np.allclose(a.loc[~prior, "net"], b.loc[~prior, "net"])


# ------------------------------------------------------------------ tomorrow
def test_next_order_by_hand():
    c, h, l = 0.004, 0.02, -0.01
    p, entry, level, tp = oos.next_order("simple", c, h, l, False)
    assert (p, entry, level) == (1, "close", 0.0) and math.isnan(tp)  # exit at the close
    assert oos.next_order("simple", -c, h, l, True)[0] == 0            # long-only: no short
    assert oos.next_order("all_signals", c, h, l, False)[0] == 0        # the low is < 0
    assert oos.next_order("entry_takeprofit", c, h, l, False)[:4] == (1, "close", 0.0, h)
    assert oos.next_order("highlow", -c, h, l, False)[:3] == (-1, "limit", h)
    p, entry, e, tp = oos.next_order("maxdiff", c, h, l, False, m_h=0.001, m_l=-0.002)
    assert (p, entry) == (1, "limit") and e == pytest.approx(-0.012) and tp == pytest.approx(0.021)
    p, entry, e, tp = oos.next_order("maxdiff", c, 0.005, -0.02, False, m_h=0.001, m_l=0.0)
    assert (p, entry) == (-1, "limit") and e == pytest.approx(0.006) and tp == pytest.approx(-0.02)
    assert oos.next_order("maxdiff", c, 0.005, -0.02, True)[0] == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_next_order_is_the_day_rule_when_it_fills(strategy):
    """The order's position is what the strategy's day rule takes on a day wide enough to
    fill every limit (and 0 on a day that reaches no level, for the limit orders)."""
    rng = np.random.default_rng(STRATEGIES.index(strategy))
    for _ in range(200):
        c, h, l = rng.normal(0, 0.01, 3)
        m_h, m_l = rng.uniform(-0.01, 0.01, 2)
        for lo_only in (False, True):
            p, entry, lev, _ = oos.next_order(strategy, c, h, l, lo_only, False, m_h, m_l)
            wide = reference.strategy_day(strategy, c, h, l, 0.001, 0.5, -0.5, lo_only, False,
                                          m_h, m_l)[0]
            assert p == wide
            if entry == "limit":  # a day that stays on the far side of the entry level
                L = lev + 0.001 if p > 0 else lev - 0.051
                missed = reference.strategy_day(strategy, c, h, l, 0.0, L + 0.05, L, lo_only,
                                                False, m_h, m_l)[0]
                assert missed == 0


def test_next_session_table(oos_result):
    n = oos_result.next_session
    assert list(n.index) == ["SYM000", "SYM001", "BTCUSD"]
    last = {s: df.index[-1] for s, df in ms.synthetic_universe(
        ["SYM000", "SYM001", "BTCUSD"], years=0.5, seed=3).items()}
    assert (n["after"] == pd.Series(last)).all()
    for sym, row in n.iterrows():
        w = oos_result.oos.walks[list(n.index).index(sym)]
        assert row["strategy"] == oos_result.strategies[w["pick"][-1]]
        if row["entry"] == "limit" and row["position"]:
            assert row["entry_price"] != row["last_close"]
    assert (n.loc["BTCUSD", "position"] >= 0)


# ------------------------------------------------------------------ determinism, engines
def test_oos_same_for_every_backend_and_n_jobs(frames, oos_result, dask_address):
    runs = [dict(backend="threads", n_jobs=2), dict(backend="loky", n_jobs=2),
            dict(backend="dask", n_jobs=2, scheduler=dask_address)]
    for kw in runs:
        r = ms.analyze(frames, impl="numba", progress=False,
                       user_strategies=[examples.follow_hits], **SMALL_OOS, **kw)
        _assert_same(oos_result, r, exact=True)
        pd.testing.assert_frame_equal(oos_result.oos.daily, r.oos.daily)
        pd.testing.assert_frame_equal(oos_result.oos.metrics, r.oos.metrics)
        pd.testing.assert_frame_equal(oos_result.next_session, r.next_session)


@pytest.fixture(scope="module")
def oos_builtin(frames):
    """The walk of the built-in strategies alone, numba on one core."""
    return ms.analyze(frames, impl="numba", backend="sequential", progress=False, **SMALL_OOS)


def test_oos_keeps_the_in_sample_analysis_unchanged(numba_result, oos_builtin):
    _assert_same(numba_result, oos_builtin, exact=True)
    assert ms.digest(numba_result) == ms.digest(oos_builtin)


def test_gpu_code_path_with_numpy_runs_the_extended_run(frames):
    cfg = ms.make_config(**SMALL)
    need = oos.extension_bars(cfg.context, cfg.simulations, cfg.eval_days, 3)
    ext = {k: oos.placeholder_frame(v.iloc[-need:]) for k, v in frames.items()}
    cfg_ext = ms.make_config(**{**SMALL, "simulations": cfg.simulations + 3})
    tasks = ms.symbol_tasks(ext, cfg_ext, ms.ARBootstrap(SMALL["ar_order"]),
                             ms.asset_classes(frames))
    on_gpu = gpu.analyze_batch(tasks, chunk=2, xp=np)
    on_cpu = {k: np.stack([api._run_fast_task(t)[k] for t in tasks]) for k in on_gpu}
    for k in on_gpu:
        np.testing.assert_allclose(on_gpu[k], on_cpu[k], rtol=ms.RTOL, atol=ms.ATOL,
                                   err_msg=k, equal_nan=True)


@pytest.mark.gpu
def test_gpu_extended_run_equals_cpu_on_device():
    frames = ms.synthetic_universe(6, years=1.0, seed=5)
    kw = dict(simulations=10, eval_days=5, context=96, num_samples=64, oos_days=8,
              forecast_next=True, progress=False)
    cpu = ms.analyze(frames, impl="numba", device="cpu", backend="sequential", **kw)
    dev = ms.analyze(frames, impl="cupy", device="gpu", **kw)
    assert dev.timings["device"] == "gpu"
    _assert_same(cpu, dev)
    for a, b in zip(cpu.oos.walks, dev.oos.walks):
        np.testing.assert_array_equal(a["pick"], b["pick"])
        np.testing.assert_array_equal(a["pos"], b["pos"])
        np.testing.assert_allclose(a["net"], b["net"], rtol=ms.RTOL, atol=ms.ATOL)
    pd.testing.assert_frame_equal(cpu.next_session[["strategy", "position", "entry"]],
                                  dev.next_session[["strategy", "position", "entry"]])


def test_numpy_engine_runs_the_walk_like_numba(frames, oos_builtin):
    """impl="numpy" (the CuPy pass on NumPy) through the dispatch table: the same walk."""
    r = ms.analyze(frames, impl="numpy", progress=False, **SMALL_OOS)
    base = oos_builtin
    assert r.timings["impl"] == "numpy"
    _assert_same(base, r)
    for a, b in zip(base.oos.walks, r.oos.walks):
        np.testing.assert_array_equal(a["pick"], b["pick"])
        np.testing.assert_array_equal(a["pos"], b["pos"])
        np.testing.assert_allclose(a["net"], b["net"], rtol=ms.RTOL, atol=ms.ATOL)
    with pytest.raises(ValueError, match=r"impl='numpy': marketsim with own strategies "
                                         r"\['follow_hits'\] has no numpy engine"):
        ms.analyze(frames, impl="numpy", progress=False, user_strategies=[examples.follow_hits],
                   **SMALL)


def test_oos_tables_and_outputs(oos_result, tmp_path):
    o = oos_result.oos
    assert o.curves == ["pick"] + list(STRATEGIES) + ["follow_hits"]
    assert len(o.daily) == 3 * 5 * len(o.curves)
    eq = o.equity()
    # the portfolio: each day's mean net return over the symbols
    np.testing.assert_allclose(o.portfolio["pick"], o.returns("pick").mean(axis=1))
    port = o.metrics.xs("portfolio", level="symbol")
    np.testing.assert_allclose(port["total_return"], eq.iloc[-1] - 1)
    assert (port["role"] == ["pick"] + ["fixed"] * 2 + ["benchmark"] + ["fixed"] * 5).all()
    cmp = o.compare(oos_result.table, oos_result.picks)
    assert cmp.loc["pick", "in_sample_picks"] == 3
    assert set(o.picks.stack().unique()) <= set(oos_result.strategies)
    assert "oos_pick" in o.headline()
    out = ms.write_results(oos_result, tmp_path)
    assert len(pd.read_parquet(out["oos_daily"])) == len(o.daily)
    assert len(pd.read_parquet(out["next_session"])) == 3
    m = json.loads(out["metrics"].read_text())
    assert m["ranking_selection"] == "in-sample" and set(m["next_session"]) == set(o.symbols)


@pytest.mark.parametrize("kw,match", [
    (dict(oos_days=-1), "oos_days must be >= 0"),
    (dict(oos_days=2.5), "oos_days must be an integer"),
    (dict(forecast_next="maybe"), "forecast_next"),
])
def test_bad_research_parameters_raise_naming_them(frames, kw, match):
    with pytest.raises(ValueError, match=match):
        ms.analyze(frames, progress=False, **{**SMALL, **kw})


def test_history_too_short_for_the_walk_names_symbol_and_oos_days(frames):
    assert ms.bars_needed(4, 4, 40, oos_days=10) == 40 + 4 + 10 + 4 - 1
    short = {"SYM000": frames["SYM000"].iloc[-50:]}
    with pytest.raises(ValueError, match=r"SYM000: history too short for oos_days=10: 50 bars,"
                                         r" needs context \+ simulations \+ oos_days \+ "
                                         r"eval_days - 1 = 57"):
        ms.analyze(short, progress=False, **{**SMALL, "oos_days": 10})


def test_warmup_research_compiles_the_walk_kernels():
    """In a fresh process: after warmup(research=True) a walk with own strategies adds no
    compiled signature to nb or oos_nb."""
    code = """
import json
from numba.core.registry import CPUDispatcher
from qbt_lib import marketsim as ms
from qbt_lib.marketsim import examples, nb, oos_nb
ms.warm_up(research=True)
sigs = lambda: {f"{m.__name__}.{k}": len(v.signatures) for m in (nb, oos_nb)
                for k, v in vars(m).items() if isinstance(v, CPUDispatcher)}
before = sigs()
frames = ms.synthetic_universe(3, years=0.5)
ms.analyze(frames, simulations=3, eval_days=3, context=30, num_samples=20, progress=False,
           backend="threads", n_jobs=2, oos_days=4, forecast_next=True,
           user_strategies=[examples.follow_hits, examples.confident], warm_up=False)
print(json.dumps([before, sigs()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after
    assert all(before[f"qbt_lib.marketsim.oos_nb.{k}"] == 1 for k in (
        "walk_builtin_nb", "rolling_mean_nb", "curves_net_nb", "curves_metrics_nb",
        "close_to_close_windows_nb"))
