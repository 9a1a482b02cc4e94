"""straddles: schedule, Black-76 valuation and greeks, implementations against the
reference, determinism across n_jobs/backends, streaming, bad input."""
from __future__ import annotations

import ast
import ctypes
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from qbt_lib import straddles as st
from qbt_lib.straddles import chunks, core, market, reference
from qbt_lib.straddles.core import RTOL


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def small_market():
    """3 synthetic assets, 2001-2003 (+ a tenor of spare days)."""
    store, assets = st.load_market("synthetic", assets=3, start_year=2001, end_year=2003,
                                   tenor=63, seed=7)
    return store, assets


@pytest.fixture(scope="module")
def small_runs(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=4, tenor=63)
    kw = dict(rate=0.03, side="long", hedge=True)
    return sched, {impl: st.backtest(store, sched, impl=impl, **kw)
                   for impl in ("reference", "numpy", "numba")}


def _frames(n_days=120, assets=("AAA", "BBB"), seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2010-01-01", periods=n_days, name="date")
    return {a: pd.DataFrame({"price": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_days))),
                             "vol": rng.uniform(0.15, 0.3, n_days)}, index=idx)
            for a in assets}


# ------------------------------------------------------------------ schedule
def test_schedule_follows_the_calendar(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=3, tenor=10)
    assert len(sched) == 12 * 3 and sched.straddle_days == 36 * 11
    days = store.dates[np.isfinite(store["price"][:, 0])]
    for s in (0, 5, 35):  # (i+1)-th trading day of the month
        y, m, i = int(sched.year[s]), int(sched.month[s]), int(sched.i[s])
        in_month = np.flatnonzero((days.year == y) & (days.month == m))
        assert sched.entry[s] == in_month[i]
    assert list(sched.straddle_id) == list(range(36))


def test_seed_shape_is_2304_per_asset():
    store, assets = st.load_market("synthetic", assets=1)
    sched = st.build_schedule(store, assets, 2001, 2024, per_month=8, tenor=63)
    assert len(sched) == 2304 and len(sched.skipped) == 0


def test_straddles_beyond_the_data_are_skipped_and_counted():
    store = st.build_store(_frames(n_days=120))          # 2010-01-01 .. mid June 2010
    sched = st.build_schedule(store, ["AAA"], 2010, 2010, per_month=2, tenor=63)
    skipped = sched.skipped
    assert len(sched) + len(skipped) == 24
    assert set(skipped["reason"]) == {"expiry beyond the data",
                                      "no such trading day in the month"}
    assert (skipped.loc[skipped.month >= 7, "reason"] == "no such trading day in the month").all()
    assert skipped["straddle_id"].is_monotonic_increasing
    bt = st.backtest(store, sched, impl="numba")
    assert bt.summary["straddle_id"].tolist() == sched.straddle_id.tolist()


# ------------------------------------------------------------------ valuation
def test_implementations_match_the_reference(small_runs):
    sched, runs = small_runs
    ref = runs["reference"]
    assert ref.rows.num_rows == sched.straddle_days
    for impl in ("numpy", "numba"):
        core.compare_rows(runs[impl].rows, ref.rows, rtol=RTOL)
        core.compare_rows(runs[impl].summary, ref.summary, rtol=RTOL)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_implementations_match_on_random_schedules(small_market, seed):
    store, assets = small_market
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(assets), size=int(rng.integers(1, 3)), replace=False))
    y0 = int(rng.integers(2001, 2004))
    sched = st.build_schedule(store, [assets[k] for k in pick], y0, 2003,
                              per_month=int(rng.integers(1, 21)),
                              tenor=int(rng.integers(1, 90)))
    kw = dict(rate=float(rng.uniform(-0.01, 0.08)), side=["long", "short"][seed % 2],
              hedge=bool(seed % 3))
    ref = st.backtest(store, sched, impl="reference", **kw)
    for impl in ("numpy", "numba"):
        got = st.backtest(store, sched, impl=impl, chunk_size=int(rng.integers(1, 200)), **kw)
        core.compare_rows(got.rows, ref.rows, rtol=RTOL)
        core.compare_rows(got.summary, ref.summary, rtol=RTOL)
    # the CuPy path without a GPU runs the same xp-generic code as NumPy
    cpu = st.backtest(store, sched, impl="cupy", device="cpu", **kw)
    assert cpu.rows.equals(st.backtest(store, sched, impl="numpy", **kw).rows)


def test_put_call_parity(small_runs):
    _, runs = small_runs
    for impl in ("reference", "numpy", "numba"):
        df = runs[impl].frame()
        disc = np.exp(-0.03 * df["tau"].to_numpy())
        lhs = (df["call"] - df["put"]).to_numpy()
        rhs = disc * (df["S"] - df["K"]).to_numpy()
        np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-12 * df["K"].max())


def test_value_at_expiry_is_intrinsic(small_runs):
    sched, runs = small_runs
    for impl in ("reference", "numpy", "numba"):
        df = runs[impl].frame()
        last = df[df["day"] == sched.tenor]
        assert len(last) == len(sched)
        assert (last["value"] == (last["S"] - last["K"]).abs()).all()
        assert (last["tau"] == 0).all() and (last[["gamma", "vega", "theta"]] == 0).all().all()
        assert (last["action"] == "exit").all() and (df[df["day"] == 0]["action"] == "entry").all()
        assert (last["delta"] == np.sign(last["S"] - last["K"])).all()


def _day1(impl, S=103.0, K=100.0, vol=0.25, tenor=40, rate=0.05):
    """Rows of a straddle struck at K whose day-1 price and vol are S, vol."""
    price = np.full(tenor + 1, S)
    price[0] = K
    return st.value_path(price, np.full(tenor + 1, vol), rate=rate, impl=impl)


@pytest.mark.parametrize("impl", ["reference", "numpy", "numba"])
def test_greeks_match_finite_differences(impl):
    S, vol, h = 103.0, 0.25, 1e-3
    row = _day1(impl, S=S, vol=vol).iloc[1]
    v = lambda **kw: _day1(impl, **kw).iloc[1]["value"]  # noqa: E731
    delta_fd = (v(S=S + h) - v(S=S - h)) / (2 * h)
    gamma_fd = (v(S=S + 10 * h) - 2 * row["value"] + v(S=S - 10 * h)) / (10 * h) ** 2
    vega_fd = (v(vol=vol + h) - v(vol=vol - h)) / (2 * h)
    assert delta_fd == pytest.approx(row["delta"], rel=1e-6)
    assert gamma_fd == pytest.approx(row["gamma"], rel=1e-5)
    assert vega_fd == pytest.approx(row["vega"], rel=1e-6)
    # theta per calendar day = -dV/dtau / 365; tau moves 1/252 a day: a constant path's
    # neighbouring days give central differences (Richardson-extrapolated, O(dtau^4))
    rows = st.value_path(np.full(41, 100.0), np.full(41, vol), rate=0.05, impl=impl)
    flat = rows["value"]
    k, dtau = 20, 1 / 252
    d1 = (flat[k - 1] - flat[k + 1]) / (2 * dtau)
    d2 = (flat[k - 2] - flat[k + 2]) / (4 * dtau)
    theta_fd = -(4 * d1 - d2) / 3 / 365
    assert theta_fd == pytest.approx(rows["theta"][k], rel=1e-5)


def test_pnl_hedge_and_summary(small_runs):
    sched, runs = small_runs
    df, summ = runs["numba"].frame(), runs["numba"].summary
    n1 = sched.days
    value = df["value"].to_numpy().reshape(-1, n1)
    delta = df["delta"].to_numpy().reshape(-1, n1)
    S = df["S"].to_numpy().reshape(-1, n1)
    np.testing.assert_array_equal(df["pnl"].to_numpy().reshape(-1, n1)[:, 1:],
                                  value[:, 1:] - value[:, :-1])
    np.testing.assert_array_equal(df["hedge_pnl"].to_numpy().reshape(-1, n1)[:, 1:],
                                  -delta[:, :-1] * (S[:, 1:] - S[:, :-1]))
    cum = df["cum_pnl"].to_numpy().reshape(-1, n1)
    np.testing.assert_array_equal(cum[:, -1], summ["hedged_pnl"].to_numpy())  # hedge=True
    np.testing.assert_allclose(summ["pnl"], value[:, -1] - value[:, 0], atol=1e-9)
    np.testing.assert_array_equal(summ["return"], summ["pnl"] / summ["entry_value"])
    assert (summ["entry_date"] < summ["exit_date"]).all()


def test_short_side_negates_pnl(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2002, 2002, per_month=2, tenor=20)
    lng = st.backtest(store, sched, side="long", hedge=False).frame()
    sht = st.backtest(store, sched, side="short", hedge=False).frame()
    pd.testing.assert_series_equal(sht["value"], lng["value"])
    for c in ("pnl", "hedge_pnl", "cum_pnl"):
        np.testing.assert_array_equal(sht[c].to_numpy(), -lng[c].to_numpy())


def test_reference_straddle_gives_the_same_row(small_market):
    """One straddle entered and valued by the reference alone gives the fast path's rows."""
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=8, tenor=63)
    bt = st.backtest(store, sched, impl="numba", rate=0.01)
    s = 500
    a, y, m, i, sid = (assets[sched.asset[s]], int(sched.year[s]), int(sched.month[s]),
                       int(sched.i[s]), int(sched.straddle_id[s]))
    prices = reference.build_prices_dict(store, [a])
    cal = reference.asset_calendar(prices, a)
    md: dict = {}
    for pos, d in enumerate(cal):
        md.setdefault((int(d[:4]), int(d[5:7])), []).append(pos)
    rows, summ, why = reference.straddle_rows(prices, a, y, m, i, sid, cal, md, 63, 0.01, 1.0,
                                              True)
    assert why is None
    one, _ = st.reference_tables({"rows": rows, "summary": [summ],
                                  "summary_columns": reference.SUMMARY}, assets)
    core.compare_rows(bt.straddle(sid), one.to_pandas(), rtol=RTOL)


# ------------------------------------------------------------------ the GPU kernels' C text
def _c_kernels(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to check the CUDA kernel text on the CPU")
    from qbt_lib.straddles import gpu
    src, so = tmp_path / "k.c", tmp_path / "k.so"
    src.write_text(gpu.c_source())
    subprocess.run([cc, "-O2", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-shared",
                    "-fPIC", str(src), "-o", str(so), "-lm"], check=True)
    return ctypes.CDLL(str(so))


def test_gpu_kernel_text_equals_the_reference_bit_for_bit(small_market, tmp_path):
    """The CUDA kernel bodies, compiled as C against the C library, give the reference's
    rows exactly: the GPU code evaluates the same expressions (only CUDA's log/exp/erfc
    differ on a device)."""
    lib = _c_kernels(tmp_path)
    store, assets = small_market
    sched = st.build_schedule(store, assets[1:], 2002, 2003, per_month=3, tenor=30)
    ref = st.backtest(store, sched, impl="reference", rate=0.02, side="short").frame()
    from qbt_lib.straddles.schedule import asset_days
    price, vol, _, start = asset_days(store, sched)
    tables = core.day_tables(30, 0.02)
    n = sched.straddle_days
    P = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    outs = [np.empty(n) for _ in range(11)]
    lib.straddle_value(ctypes.c_longlong(n), P(price), P(vol), P(start), *(P(t) for t in tables),
                       ctypes.c_longlong(30), ctypes.c_double(0.02), *(P(o) for o in outs))
    for name, o in zip(("S", "K", "vol", "tau", "call", "put", "value", "delta", "gamma",
                        "vega", "theta"), outs):
        np.testing.assert_array_equal(o, ref[name].to_numpy(), err_msg=name)
    pnl, hp, cum = np.empty(n), np.empty(n), np.empty(n)
    sp, sh = np.empty(len(sched)), np.empty(len(sched))
    lib.straddle_pnl(ctypes.c_longlong(len(sched)), P(outs[6]), P(outs[7]), P(outs[0]),
                     ctypes.c_longlong(30), ctypes.c_double(-1.0), ctypes.c_int(1), P(pnl),
                     P(hp), P(cum), P(sp), P(sh))
    for name, o in (("pnl", pnl), ("hedge_pnl", hp), ("cum_pnl", cum)):
        np.testing.assert_array_equal(o, ref[name].to_numpy(), err_msg=name)


def test_gpu_glue_with_the_kernels_run_as_c(small_market, tmp_path, monkeypatch):
    """``value_chunk_gpu`` (argument order, outputs, copies back, identity columns) run
    against a stand-in for CuPy whose two kernels are the C build of their bodies."""
    import sys
    import types

    lib = _c_kernels(tmp_path)
    P = lambda a: np.ascontiguousarray(a).ctypes.data_as(ctypes.c_void_p)  # noqa: E731

    class Arr(np.ndarray):
        def get(self, out=None):
            if out is None:
                return np.asarray(self).copy()
            out[...] = self
            return out

    class Kernel:
        def __init__(self, in_params, out_params, body, name, **kw):
            self.name = name
            assert kw.get("options") == ("--fmad=false",)

        def __call__(self, *a):
            if self.name == "straddle_value":
                *arrays, tenor, rate = a[:8]
                outs = a[8:]
                lib.straddle_value(ctypes.c_longlong(len(outs[0])), *(P(x) for x in arrays),
                                   ctypes.c_longlong(int(tenor)), ctypes.c_double(float(rate)),
                                   *(P(o) for o in outs))
            else:
                value, delta, S, tenor, side, hedge, pnl, hp, cum, sp, sh = a
                lib.straddle_pnl(ctypes.c_longlong(len(sp)), P(value), P(delta), P(S),
                                 ctypes.c_longlong(int(tenor)), ctypes.c_double(float(side)),
                                 ctypes.c_int(int(hedge)), P(pnl), P(hp), P(cum), P(sp), P(sh))

    fake = types.ModuleType("cupy")
    fake.asarray = lambda x: np.ascontiguousarray(x).view(Arr)
    fake.empty = lambda n, dtype=np.float64: np.empty(n, dtype).view(Arr)
    fake.float64 = np.float64
    fake.ElementwiseKernel = Kernel
    monkeypatch.setitem(sys.modules, "cupy", fake)
    from qbt_lib.straddles import gpu
    # the pinned-staged copies are tested on their own (tests/test_pinned.py)
    monkeypatch.setattr(gpu, "to_device", fake.asarray)
    monkeypatch.setattr(gpu, "to_host_into", lambda d, out: np.copyto(out, d))
    gpu.kernels.cache_clear()
    try:
        store, assets = small_market
        sched = st.build_schedule(store, assets, 2002, 2002, per_month=3, tenor=25)
        ref = st.backtest(store, sched, impl="reference", rate=0.01, side="short", hedge=False)
        from qbt_lib.straddles.schedule import asset_days
        price, vol, dates, start = asset_days(store, sched)
        out = core.empty_rows(sched.straddle_days)
        s_pnl, s_hedge = gpu.value_chunk_gpu(price, vol, dates, start, sched, 0.01, -1.0, False,
                                             core.day_tables(25, 0.01), out)
        assert core.rows_table(out, assets).equals(ref.rows)
        np.testing.assert_array_equal(s_pnl, ref.summary["pnl"].to_numpy())
        np.testing.assert_array_equal(s_hedge, ref.summary["hedge_pnl"].to_numpy())
        # output="summary": the rows stay on the device, only the per-straddle results
        sp, sh, ev, xv = gpu.summary_chunk_gpu(price, vol, start, sched, 0.01, -1.0, False,
                                               core.day_tables(25, 0.01))
        np.testing.assert_array_equal(sp, s_pnl)
        np.testing.assert_array_equal(sh, s_hedge)
        np.testing.assert_array_equal(ev, out["value"][::sched.days])
        np.testing.assert_array_equal(xv, out["value"][sched.days - 1::sched.days])
    finally:
        gpu.kernels.cache_clear()


@pytest.mark.gpu
def test_cupy_matches_cpu_on_gpu(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=8, tenor=63)
    cpu = st.backtest(store, sched, impl="numba", rate=0.02)
    gpu = st.backtest(store, sched, impl="cupy", device="gpu", rate=0.02)
    core.compare_rows(gpu.rows, cpu.rows, rtol=1e-12)
    import cupy as cp
    from qbt_lib.straddles.gpu import value_rows_xp_gpu
    from qbt_lib.straddles.schedule import asset_days
    price, vol, _, start = asset_days(store, sched)
    xp_cols = value_rows_xp_gpu(cp.asarray(price), cp.asarray(vol), cp.asarray(start), 63,
                                0.02, 1.0, True, core.day_tables(63, 0.02))
    got = {k: cp.asnumpy(v).reshape(-1) for k, v in xp_cols.items() if k in core.FLOAT_COLUMNS}
    want = {k: cpu.rows[k].to_numpy() for k in core.FLOAT_COLUMNS}
    assert core.max_rel_diff(got, want) < 1e-12


# ------------------------------------------------------------------ determinism, streaming
def test_identical_for_any_n_jobs_backend_and_chunk(small_market, dask_address):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=5, tenor=30)
    base = st.backtest(store, sched, impl="numba", chunk_size=10_000)
    for backend, n_jobs, chunk in (("sequential", 1, 7), ("threads", 2, 50),
                                   ("loky", 2, 100), ("dask", 2, 64)):
        got = st.backtest(store, sched, impl="numba", backend=backend, n_jobs=n_jobs,
                          chunk_size=chunk, scheduler=dask_address, progress=False)
        assert got.rows.equals(base.rows), (backend, n_jobs, chunk)
        assert got.summary.equals(base.summary), (backend, n_jobs, chunk)
    got = st.backtest(store, sched, impl="numpy", backend="threads", n_jobs=2, chunk_size=33)
    assert got.rows.equals(st.backtest(store, sched, impl="numpy").rows)
    summ = st.backtest(store, sched, output="summary", n_jobs=2, chunk_size=40)
    assert summ.rows is None and summ.summary.equals(base.summary)


def test_parquet_stream_equals_memory(small_market, tmp_path):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2002, per_month=4, tenor=30)
    mem = st.backtest(store, sched, impl="numba")
    out = tmp_path / "ds"
    for backend in ("threads", "loky"):
        bt = st.backtest(store, sched, impl="numba", output="parquet", path=out,
                         chunk_size=50, n_jobs=2, backend=backend, progress=False)
        assert bt.rows is None and bt.path == out
        assert pq.read_table(out / "rows").equals(mem.rows)
        assert bt.summary.equals(mem.summary)
        assert len(list((out / "rows").glob("*.parquet"))) == -(-len(sched) // 50)
        sid = int(sched.straddle_id[77])
        pd.testing.assert_frame_equal(bt.straddle(sid), mem.straddle(sid))
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_failed_stream_leaves_no_partial_dataset(small_market, tmp_path, monkeypatch):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=4, tenor=30)
    out = tmp_path / "ds"
    st.backtest(store, sched, output="parquet", path=out, chunk_size=10)
    before = sorted(p.name for p in (out / "rows").iterdir())
    real = chunks.value_chunk
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(chunks, "value_chunk", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        st.backtest(store, sched, output="parquet", path=out, chunk_size=10,
                    backend="sequential")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]     # no temp dir left
    assert sorted(p.name for p in (out / "rows").iterdir()) == before  # old one intact


# ------------------------------------------------------------------ data sources
def test_file_source_csv_and_parquet(tmp_path):
    frames = _frames(n_days=300)
    long = pd.concat([f.assign(asset=a) for a, f in frames.items()]).reset_index()
    csv, parquet = tmp_path / "m.csv", tmp_path / "m.parquet"
    long.to_csv(csv, index=False)
    long.to_parquet(parquet)
    s1, a1 = st.load_market(csv, assets="all")
    s2, a2 = st.load_market(parquet, assets=["BBB"])
    assert a1 == ["AAA", "BBB"] and a2 == ["BBB"]
    np.testing.assert_allclose(s1.series("price", "BBB"), frames["BBB"]["price"], rtol=1e-15)
    np.testing.assert_array_equal(s2.series("vol", "BBB"), s1.series("vol", "BBB"))
    with pytest.raises(ValueError, match=r"assets: unknown symbol\(s\) \['CCC'\]"):
        st.load_market(csv, assets=["CCC"])
    with pytest.raises(ValueError, match="no vol column.*vol='realized:20'"):
        long.drop(columns=["vol"]).to_csv(csv, index=False)
        st.load_market(csv)


def test_sp500_with_vix():
    pytest.importorskip("arch")
    store, assets = st.load_market("sp500", assets="all")
    assert assets == ["SP500"] and store.dates[0].year == 2014 and store.dates[-1].year == 2018
    vol = store.series("vol", "SP500")
    assert np.isfinite(vol).all() and 0.05 < np.median(vol) < 0.4
    sched = st.build_schedule(store, assets, 2014, 2018, per_month=8, tenor=63)
    assert len(sched) + len(sched.skipped) == 5 * 12 * 8
    assert (sched.skipped["reason"] == "expiry beyond the data").sum() >= 8 * 2


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw,match", [
    (dict(per_month=0), "per_month must be >= 1"),
    (dict(per_month=21), "per_month must be <= 20"),
    (dict(tenor=0), "tenor must be >= 1"),
    (dict(start_year=2005, end_year=2004), "empty date range"),
    (dict(start_year=1990, end_year=1995), "empty date range"),
    (dict(assets=["AAA", "ZZZ"]), "unknown asset 'ZZZ'"),
])
def test_bad_schedule_parameters(kw, match):
    store = st.build_store(_frames(n_days=400))
    args = dict(assets=["AAA"], start_year=2010, end_year=2010, per_month=8, tenor=63) | kw
    with pytest.raises(ValueError, match=match):
        st.build_schedule(store, **args)


@pytest.mark.parametrize("field,pos,value,match", [
    ("price", 10, -1.0, r"asset 'BBB' on 2010-01-15: price <= 0"),
    ("price", 11, np.nan, r"asset 'BBB' on 2010-01-18: price is NaN"),
    ("vol", 12, -0.2, r"asset 'BBB' on 2010-01-19: vol <= 0"),
    ("vol", 0, np.nan, r"asset 'BBB' on 2010-01-01: vol is missing"),
])
def test_bad_data_names_asset_and_date(field, pos, value, match):
    frames = _frames()
    frames["BBB"].iloc[pos, frames["BBB"].columns.get_loc(field)] = value
    with pytest.raises(ValueError, match=match):
        st.build_store(frames)


def test_vol_gaps_carry_forward_up_to_five_days():
    frames = _frames()
    v = frames["AAA"]["vol"].to_numpy().copy()
    frames["AAA"].iloc[20:25, 1] = np.nan          # 5 missing days: carried forward
    clean = market.clean_frames(frames)["AAA"]["vol"].to_numpy()
    assert (clean[20:25] == v[19]).all() and (clean[25:] == v[25:]).all()
    frames["AAA"].iloc[40:46, 1] = np.nan          # 6: too long
    with pytest.raises(ValueError, match=r"asset 'AAA' on 2010-02-26: vol gap of 6 trading"):
        st.build_store(frames)


@pytest.mark.parametrize("kw,match", [
    (dict(impl="fortran"), "impl must be one of"), (dict(side="both"), "side must be one of"),
    (dict(rate=float("nan")), "rate must be finite"), (dict(n_jobs=0), "n_jobs must not be 0"),
    (dict(backend="mpi"), "backend must be one of"), (dict(hedge="maybe"), "hedge must be"),
    (dict(impl="numba", device="gpu"), "device='gpu' needs impl='cupy'"),
    (dict(output="parquet"), "needs path="), (dict(output="csv"), "output must be one of"),
])
def test_bad_backtest_parameters(small_market, kw, match):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=1, tenor=5)
    with pytest.raises(ValueError, match=match):
        st.backtest(store, sched, **kw)


def test_notebook_parameters_accept_papermill_floats():
    bt = st.run(source="synthetic", assets=2.0, start_year=2001.0, end_year=2001,
                per_month=2.0, tenor=21.0, n_jobs=1.0)
    assert bt.n_straddles == 2 * 12 * 2 and bt.rows.num_rows == bt.n_straddles * 22
    with pytest.raises(ValueError, match="per_month must be an integer"):
        st.run(assets=1, start_year=2001, end_year=2001, per_month=2.5)
    assert math.isfinite(bt.summary["hedged_return"].mean())


def test_a_store_built_elsewhere_is_checked():
    from qbt_lib.data import PriceStore
    frames = _frames()
    frames["AAA"].iloc[7, 1] = -0.1
    store = PriceStore.build(frames, fields=("price", "vol"))
    sched = st.build_schedule(store, ["AAA"], 2010, 2010, per_month=1, tenor=5)
    with pytest.raises(ValueError, match=r"asset 'AAA' on 2010-01-12: bad price/vol"):
        st.backtest(store, sched)


def test_gamma_is_compared_per_unit_of_price():
    """Measured on an H200: a far-from-the-money gamma of 2.8e-32 differed from the CPU's in
    its 12th digit (CUDA's exp); per unit of price (scale 1/strike) that is no difference,
    while a real gamma error is still caught."""
    import pandas as pd
    want = pd.DataFrame({"K": [100.0, 100.0], "gamma": [2.822661923548555e-32, 0.02]})
    got = want.copy()
    got.loc[0, "gamma"] = 2.822661923545105e-32
    core.compare_rows(got, want, rtol=1e-12)
    assert core.max_rel_diff(got, want, names=("gamma",)) < 1e-12
    got.loc[1, "gamma"] = 0.02 * (1 + 1e-9)
    with pytest.raises(AssertionError, match="gamma"):
        core.compare_rows(got, want, rtol=1e-12)
# ------------------------------------------------------------------ the anatomy (#11)
def test_parameters_are_declared_and_checked_in_one_place(small_market):
    from qbt_lib.straddles import params
    p = params.check_run({"per_month": 2.0, "tenor": "21", "chunk_size": 1e3, "n_jobs": 1.0,
                          "hedge": "false", "impl": "NUMBA", "start_year": 2001.0})
    assert (p["per_month"], p["tenor"], p["chunk_size"], p["n_jobs"], p["hedge"], p["impl"],
            p["start_year"]) == (2, 21, 1000, 1, False, "numba", 2001)
    assert p["end_year"] is None and p["source"] == "synthetic"   # the defaults filled in
    with pytest.raises(ValueError, match=r"unknown parameter for straddles: 'tenr'; known:"):
        st.run(tenr=21)
    with pytest.raises(ValueError, match="chunk_size must be None, or an integer, got 2.5"):
        params.check_run({"chunk_size": 2.5})
    with pytest.raises(ValueError, match=r"device must be one of \['auto', 'cpu', 'gpu'\]"):
        params.check_run({"device": "tpu"})
    with pytest.raises(ValueError, match="impl must be one of .*'auto'.*'cupy'"):
        params.check_backtest({"impl": "fast"})
    with pytest.raises(ValueError, match="start_year must be None, or <= 2,200"):
        params.check_run({"start_year": 3000})
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=1, tenor=5)
    with pytest.raises(ValueError, match="chunk_size must be None, or >= 1"):
        st.backtest(store, sched, chunk_size=0)
    with pytest.raises(ValueError, match="rate must be <= 1.0"):
        st.value_path(np.full(3, 100.0), np.full(3, 0.2), rate=2)


def test_one_dispatch_table_same_answers_for_every_impl(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2002, 2002, per_month=3, tenor=20)
    assert list(st.ENGINES) == ["reference", "numpy", "numba", "cupy"]
    ref = st.backtest(store, sched, impl="reference", rate=0.02)
    runs = {impl: st.backtest(store, sched, impl=impl, rate=0.02, chunk_size=13)
            for impl in ("auto", "numpy", "numba", "cupy")}
    for impl, bt in runs.items():
        core.compare_rows(bt.rows, ref.rows, rtol=RTOL)
        core.compare_rows(bt.summary, ref.summary, rtol=RTOL)
    assert runs["auto"].params["impl"] == "numba" and runs["auto"].rows.equals(runs["numba"].rows)
    assert runs["cupy"].params["impl"] in ("numpy", "cupy")  # no GPU: the same array code
    assert st.resolve("auto", "cpu")[:2] == ("numba", "cpu")
    assert st.resolve("reference")[2] is st.reference_backtest
    with pytest.raises(ValueError, match="impl='numba' runs on the CPU; device='gpu' needs"):
        st.resolve("numba", "gpu")
    # the chunk kernels' table has no reference (it values whole schedules): the error
    # names the ones it has
    price, vol, dates, start = st.asset_days(store, sched)
    with pytest.raises(ValueError, match=r"no reference engine; it has \['auto', 'numpy', "
                                         r"'numba', 'cupy'\]"):
        st.value_chunk("reference", "cpu", price, vol, dates, start, sched, 0.0, 1.0, True,
                       core.empty_rows(sched.straddle_days))


def test_auto_stays_on_the_cpu_with_a_gpu(monkeypatch, caplog):
    """``AUTO_GPU=False``: with a (pretend) usable GPU, impl='auto' still runs Numba and
    says why once; device='gpu' or impl='cupy' asks for the GPU explicitly."""
    from qbt_lib import device
    monkeypatch.setattr(device, "gpu_status", lambda: (True, "pretend GPU"))
    monkeypatch.setattr(device, "_warned", set())
    assert st.AUTO_GPU is False and "straddles-h200.json" in st.WHY_CPU
    with caplog.at_level("INFO", logger="qbt"):
        assert st.resolve("auto", "auto")[:2] == ("numba", "cpu")
        assert st.resolve("auto", "auto")[:2] == ("numba", "cpu")
    assert sum(st.WHY_CPU in r.getMessage() for r in caplog.records) == 1
    assert st.resolve("auto", "gpu")[:2] == ("cupy", "gpu")
    assert st.resolve("cupy", "auto")[:2] == ("cupy", "gpu")


def test_compare_impls_times_the_same_work(small_market):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2002, 2002, per_month=2, tenor=10)
    t = st.compare_impls(store, sched, impls=["reference", "numpy", "numba"], repeats=1)
    assert list(t.index) == ["reference", "numpy", "numba"] and t.index.name == "run"
    assert t["same_answers"].all() and t.loc["reference", "speedup"] == 1.0
    assert (t["straddles"] == len(sched)).all() and (t["n_jobs"] == 1).all()
    assert t["unit"].iloc[0] == "straddle-days/s" and "efficiency" not in t
    np.testing.assert_allclose(t["throughput"], sched.straddle_days / t["seconds"])
    s = st.compare_impls(store, sched, impls=["numba"], n_jobs=[1, 2], repeats=1,
                         output="summary")
    assert list(s.index) == ["numba, n_jobs=1", "numba, n_jobs=2"]
    assert list(s["n_jobs"]) == [1, 2] and s["same_answers"].all()
    assert s["efficiency"].iloc[0] == 1.0
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        st.compare_impls(store, sched, repeats=0)


def test_the_result_builds_headline_and_metrics(small_market, tmp_path):
    from qbt_lib.metrics import Result
    from qbt_lib.report import HEADLINE_KEYS
    store, assets = small_market
    sched = st.build_schedule(store, assets[:2], 2002, 2002, per_month=2, tenor=10)
    bt = st.backtest(store, sched, impl="numba")
    assert isinstance(bt, Result) and bt.workload == "straddles"
    assert bt.headline().startswith(f"impl=numba, n_jobs=1, backend=threads: "
                                    f"{sched.straddle_days:,} rows in ")
    h = bt.report_headline()
    assert tuple(h) == HEADLINE_KEYS and h["speedup_vs_reference"].startswith("not measured")
    timing = st.compare_impls(store, sched, impls=["reference", "numba"], repeats=1)
    scaling = st.compare_impls(store, sched, impls=["numba"], n_jobs=[1, 2], repeats=1,
                               output="summary")
    h = bt.with_timings(timing, scaling).report_headline()
    assert h["speedup_vs_reference"] == (f"{timing.loc['numba', 'speedup']:.0f}x "
                                         f"({len(sched):,} straddles, one core)")
    assert h["parallel_efficiency"].endswith("at 2 workers")
    assert h["throughput"].endswith("numba, 2 cores")
    m = bt.metrics()
    assert m["n_rows"] == sched.straddle_days and m["skipped"] == 0
    assert m["mean_return"] == pytest.approx(bt.summary["return"].mean())
    assert len(m["timing"]) == 2 and len(m["parallel"]) == 2
    p = bt.write_metrics(tmp_path / "out", params={"source": "synthetic"}, wall_seconds=1.5)
    doc = json.loads(p.read_text())
    assert doc["workload"] == "straddles" and doc["headline"] == h
    assert doc["params"]["source"] == "synthetic" and doc["params"]["impl"] == "numba"
    assert doc["params"]["assets"] == assets[:2] and doc["wall_seconds"] == 1.5
    by = bt.by_asset()
    assert list(by.index) == assets[:2] and (by["straddles"] == len(sched) // 2).all()
    assert "<b>straddles</b>" in bt._repr_html_()


def test_run_keeps_the_market_parameters(tmp_path):
    bt = st.run(assets=1, start_year=2001, end_year=2001, per_month=1, tenor=5,
                output="parquet", output_path=tmp_path / "ds", vol_premium=0.03)
    assert bt.path == tmp_path / "ds" and bt.n_straddles == 12
    assert {k: bt.params[k] for k in ("source", "vol", "adjust", "seed", "vol_premium")} == \
        {"source": "synthetic", "vol": "column", "adjust": True, "seed": 0, "vol_premium": 0.03}
    assert (bt.params["start_year"], bt.params["per_month"], bt.params["tenor"]) == (2001, 1, 5)


STRADDLES_MODULES = sorted(p.stem for p in Path(st.__file__).parent.glob("*.py")
                           if p.stem != "__init__")


def test_every_module_imports_on_its_own():
    code = "; ".join(f"import qbt_lib.straddles.{m}" for m in STRADDLES_MODULES)
    for m in STRADDLES_MODULES:   # a fresh interpreter per module: an import cycle fails
        subprocess.run([sys.executable, "-c", f"import qbt_lib.straddles.{m}"], check=True,
                       capture_output=True)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_is_small_named_functions():
    from qbt_lib.straddles import bench
    tree = ast.parse(Path(bench.__file__).read_text())
    sizes = {f.name: f.end_lineno - f.lineno + 1 for f in tree.body
             if isinstance(f, ast.FunctionDef)}
    assert max(sizes.values()) <= 80, sizes
    assert set(bench.TRACKED) == {"seed_numba_vs_reference", "rows_kept_straddle_days_per_s",
                                  "summary_only_straddle_days_per_s",
                                  "rows_kept_vs_summary_only",
                                  "rows_kept_parallel_efficiency",
                                  "parquet_streamed_vs_raw_write"}
