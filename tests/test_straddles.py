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

from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qbt_lib import straddles as st
from qbt_lib.straddles import chunks, core, market, reference, structures
from qbt_lib.straddles import portfolio as book_mod
from qbt_lib.straddles import spec as spec_mod
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
                                  "parquet_streamed_vs_raw_write",
                                  "parquet_normalized_straddle_days_per_s"}   # issue #16


# ================================================================== issue #16: structures,
# costs, exits, the book, the normalized dataset
N = NormalDist().cdf
CPU_IMPLS = ("reference", "numpy", "numba")
SPECS = [dict(structure="call"), dict(structure="put"),
         dict(structure="strangle"),                                  # 25-delta wings
         dict(structure="strangle", wing="moneyness:5%", spread="vol:1.5"),
         dict(structure="call", wing="delta:0.3", hedge_cost_bps=5, exit="days:12"),
         dict(spread="premium:0.04", hedge_cost_bps=2, exit="profit:0.3,loss:0.5"),
         dict(structure="put", wing="moneyness:0.03", spread="vol:1", exit="loss:0.4")]


def _black(S, K, vol, tau, rate=0.0):
    """Black-76 call and put, written out (the hand calculation)."""
    if tau == 0:
        return max(S - K, 0.0), max(K - S, 0.0)
    D, sq = math.exp(-rate * tau), vol * math.sqrt(tau)
    d1 = (math.log(S / K) + 0.5 * sq * sq) / sq
    d2 = d1 - sq
    return D * (S * N(d1) - K * N(d2)), D * (K * N(-d2) - S * N(-d1))


def test_spec_parsing_and_errors_name_the_parameter():
    p = spec_mod.parse
    assert p().is_seed and p(spread=0, hedge_cost_bps=0.0, exit="expiry").is_seed
    s = p("strangle")
    assert (s.wing_kind, s.wing) == ("delta", 0.25) and not s.is_seed
    assert p("strangle", "delta:25").wing == 0.25 == p("strangle", "delta:25%").wing
    assert p("strangle", "moneyness:5%").wing == 0.05 == p("strangle", "moneyness:0.05").wing
    assert p("call").wing_kind == "atm" and p("put", "delta:0.1").wing == 0.1
    assert (p(spread="vol:1.5").spread_kind, p(spread=1.5).spread) == ("vol", 0.015)
    assert p(spread="premium:4%").spread == 0.04 == p(spread="premium:0.04").spread
    e = p(exit="days:20.0,profit:0.5,loss:1")                     # papermill-style floats
    assert (e.exit_days, e.exit_profit, e.exit_loss) == (20, 0.5, 1.0)
    assert p(exit=e.exit_text) == e and spec_mod.parse(**e.params()) == e
    assert spec_mod.Spec.from_json(e.to_json()) == e
    bad = [(dict(structure="butterfly"), "structure must be one of"),
           (dict(wing="delta:0.25"), "a straddle is struck at the money"),
           (dict(structure="strangle", wing="atm:1"), "wing must be"),
           (dict(structure="strangle", wing="delta:0.7"), r"wing delta must be in \(0, 0.5\]"),
           (dict(structure="call", wing="moneyness:1.5"), r"moneyness must be in \[0, 1\)"),
           (dict(spread="bid:1"), "spread must be"), (dict(spread=-1), "spread must be >= 0"),
           (dict(spread="premium:2"), "fraction of the premium"),
           (dict(hedge_cost_bps=-1), "hedge_cost_bps must be >= 0"),
           (dict(hedge_cost_bps="x"), "hedge_cost_bps must be a number"),
           (dict(exit="stop:1"), "exit must be 'expiry'"), (dict(exit="days:0"), "days must be >= 1"),
           (dict(exit="days:2.5"), "exit days must be an integer"),
           (dict(exit="profit:0"), "exit profit must be > 0"),
           (dict(exit="loss:1,loss:2"), "loss is given twice")]
    for kw, match in bad:
        with pytest.raises(ValueError, match=match):
            p(**kw)


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_strangle_by_moneyness_hand_computed(impl):
    """+-5% wings around 100: a 105 call and a 95 put, Black-76 written out by hand."""
    price = np.full(64, 100.0)
    price[-1] = 108.0
    rows = st.value_path(price, np.full(64, 0.2), rate=0.0, impl=impl, structure="strangle",
                         wing="moneyness:5%")
    assert (rows["K_call"] == 105.0).all() and (rows["K_put"] == 95.0).all()
    assert (rows["K"] == 100.0).all()
    for k in (0, 30, 62):
        c, p = _black(100.0, 105.0, 0.2, (63 - k) / 252), _black(100.0, 95.0, 0.2, (63 - k) / 252)
        assert rows["call"][k] == pytest.approx(c[0], rel=1e-13)
        assert rows["put"][k] == pytest.approx(p[1], rel=1e-13)
        assert rows["value"][k] == rows["call"][k] + rows["put"][k]
    assert rows["value"].iloc[-1] == 3.0 and rows["delta"].iloc[-1] == 1.0  # 108 - 105


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("rate", [0.0, 0.05])
def test_delta_wings_are_solved_on_the_entry_day(impl, rate):
    """A 25-delta call reads delta +0.25 on its entry row, the put -0.25, the strangle 0;
    the strikes are the closed form of Black-76's delta."""
    price, vol = np.linspace(100.0, 90.0, 64), np.full(64, 0.3)
    tau0 = 63 / 252
    D, sq = math.exp(-rate * tau0), 0.3 * math.sqrt(tau0)
    z = NormalDist().inv_cdf(0.25 / D)
    call = st.value_path(price, vol, rate=rate, impl=impl, structure="call", wing="delta:25")
    put = st.value_path(price, vol, rate=rate, impl=impl, structure="put", wing="delta:0.25")
    both = st.value_path(price, vol, rate=rate, impl=impl, structure="strangle")
    assert call["delta"][0] == pytest.approx(0.25, abs=1e-14)
    assert put["delta"][0] == pytest.approx(-0.25, abs=1e-14)
    assert both["delta"][0] == pytest.approx(0.0, abs=1e-14)
    assert call["K_call"][0] == pytest.approx(100 * math.exp(0.5 * sq * sq - z * sq), rel=1e-15)
    assert put["K_put"][0] == pytest.approx(100 * math.exp(0.5 * sq * sq + z * sq), rel=1e-15)
    assert (both["K_call"] > 100).all() and (both["K_put"] < 100).all()
    for c in ("call", "value", "delta", "gamma", "vega", "theta"):  # the legs add up
        np.testing.assert_allclose(both[c], (call[c] + put[c]) if c != "call" else call[c],
                                   rtol=1e-13, atol=1e-15)
    assert (call["put"] == 0).all() and (put["call"] == 0).all()
    assert (call["K_put"] == call["K_call"]).all()      # one leg: its strike in both columns


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_call_and_put_legs_add_up_to_the_straddle(impl):
    rng = np.random.default_rng(5)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 41)))
    price[0] = 100.0
    vol = rng.uniform(0.15, 0.3, 41)
    kw = dict(rate=0.03, impl=impl)
    strad = st.value_path(price, vol, **kw)
    call = st.value_path(price, vol, structure="call", **kw)
    put = st.value_path(price, vol, structure="put", **kw)
    for c in ("value", "delta", "gamma", "vega", "theta", "pnl", "hedge_pnl", "cum_pnl"):
        np.testing.assert_allclose(call[c] + put[c], strad[c], rtol=1e-12, atol=1e-13, err_msg=c)
    np.testing.assert_array_equal(call["call"], call["value"])
    disc = np.exp(-0.03 * call["tau"].to_numpy())   # put-call parity leg by leg
    np.testing.assert_allclose(call["value"] - put["value"], disc * (price - 100.0), atol=1e-12)


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_strangle_greeks_match_finite_differences(impl):
    def row(S=103.0, vol=0.25):
        price = np.full(41, S)
        price[0] = 100.0
        return st.value_path(price, np.full(41, vol), rate=0.05, impl=impl,
                             structure="strangle", wing="moneyness:0.04").iloc[1]
    # the strikes are fixed by day 0 (100, vol 0.25); day 1's S and vol move
    r, h = row(), 1e-3
    assert (row(S=103 + h)["value"] - row(S=103 - h)["value"]) / (2 * h) == \
        pytest.approx(r["delta"], rel=1e-6)
    assert (row(S=103 + 0.01)["value"] - 2 * r["value"] + row(S=103 - 0.01)["value"]) / 1e-4 == \
        pytest.approx(r["gamma"], rel=1e-5)
    hv = 1e-4
    assert (row(vol=0.25 + hv)["value"] - row(vol=0.25 - hv)["value"]) / (2 * hv) == \
        pytest.approx(r["vega"], rel=1e-7)


def test_seed_options_through_the_general_reference_are_the_seed_bit_for_bit(small_market):
    """The general valuation with the seed's straddle (held to expiry via a days:N beyond
    the tenor) gives the seed reference's numbers exactly: phi_c + phi_p is 2 phi."""
    store, assets = small_market
    sched = st.build_schedule(store, assets[:2], 2002, 2002, per_month=3, tenor=30)
    seed = st.backtest(store, sched, impl="reference", rate=0.02, side="short").frame()
    gen = st.backtest(store, sched, impl="reference", rate=0.02, side="short",
                      exit="days:31").frame()
    for c in seed.columns:
        pd.testing.assert_series_equal(gen[c], seed[c], check_exact=True)
    assert (gen["cost"] == 0).all() and (gen["K_call"] == gen["K"]).all()


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_spread_costs_hand_computed(impl):
    """Constant market: long ATM straddle, a 2-vol-point spread: half of it (1 point x vega)
    at entry; closed on day 10 it pays again at day 10's vega; held to expiry it does not."""
    price, vol = np.full(64, 100.0), np.full(64, 0.2)
    held = st.value_path(price, vol, impl=impl, exit="days:100")          # no costs
    rows = st.value_path(price, vol, impl=impl, spread="vol:2")
    assert rows["cost"][0] == 0.01 * held["vega"][0] and (rows["cost"][1:] == 0).all()
    assert rows["pnl"][0] == -rows["cost"][0]
    assert rows["cum_pnl"].iloc[-1] == pytest.approx(
        held["cum_pnl"].iloc[-1] - 0.01 * held["vega"][0], rel=1e-12)
    early = st.value_path(price, vol, impl=impl, spread="vol:2", exit="days:10", hedge=False)
    assert len(early) == 11 and early["action"].tolist() == ["entry"] + ["hold"] * 9 + ["exit"]
    assert early["cost"][10] == 0.01 * held["vega"][10]
    want = held["value"][10] - held["value"][0] - 0.01 * (held["vega"][0] + held["vega"][10])
    assert early["cum_pnl"].iloc[-1] == pytest.approx(want, rel=1e-12)
    prem = st.value_path(price, vol, impl=impl, spread="premium:0.04", exit="days:10")
    assert prem["cost"][0] == 0.02 * held["value"][0]
    assert prem["cost"][10] == 0.02 * held["value"][10]
    short = st.value_path(price, vol, impl=impl, side="short", spread="vol:2", exit="days:10")
    assert (short["cost"] == early["cost"]).all()                 # a cost whatever the side
    assert short["pnl"][0] == early["pnl"][0]


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_hedge_costs_hand_computed(impl):
    """10 bp per hedge trade: on the entry close |delta_0| units, then |delta_k -
    delta_{k-1}| each close, and |delta_{e-1}| unwound at the exit close; the plain P&L
    pays none of it."""
    price = np.array([100.0, 102.0, 99.0, 101.0, 103.0])
    vol = np.array([0.2, 0.22, 0.21, 0.2, 0.2])
    held = st.value_path(price, vol, impl=impl, exit="days:100")
    rows = st.value_path(price, vol, impl=impl, hedge_cost_bps=10)
    d, c = held["delta"].to_numpy(), 1e-3
    want = c * price * np.abs(np.r_[d[0], d[1:4] - d[0:3], d[3]])
    np.testing.assert_allclose(rows["hedge_cost"], want, rtol=1e-15)
    np.testing.assert_array_equal(rows["pnl"], held["pnl"])
    np.testing.assert_allclose(rows["hedge_pnl"], held["hedge_pnl"] - want, rtol=1e-14,
                               atol=1e-15)
    early = st.value_path(price, vol, impl=impl, hedge_cost_bps=10, exit="days:2")
    assert early["hedge_cost"].tolist() == pytest.approx(
        [c * 100 * abs(d[0]), c * 102 * abs(d[1] - d[0]), c * 99 * abs(d[1])], rel=1e-15)


def _first(cond) -> int:
    return int(np.flatnonzero(cond)[0])


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_profit_and_loss_exits_on_daily_marks(impl):
    rng = np.random.default_rng(11)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 64)))
    price[0] = 100.0
    vol = np.full(64, 0.25)
    held = st.value_path(price, vol, impl=impl, hedge=False, exit="days:100")  # to expiry
    mark = held["cum_pnl"].to_numpy()
    prem = held["value"][0]
    for x in (0.2, 0.5):                # take profit: the first close at +X premium
        e = _first(mark[1:] >= x * prem) + 1
        rows = st.value_path(price, vol, impl=impl, hedge=False, exit=f"profit:{x}")
        assert len(rows) == e + 1 and rows["action"].iloc[-1] == "exit"
        same = held.columns.intersection(rows.columns).drop("action")
        core.compare_rows(rows[same], held.iloc[:e + 1][same])   # bit for bit up to the exit
    # a short straddle takes 50% of the premium in a calm market (theta)
    calm = np.full(64, 100.0)
    held_s = st.value_path(calm, vol, impl=impl, side="short", hedge=False)
    e = _first(held_s["cum_pnl"].to_numpy() >= 0.5 * held_s["value"][0])
    rows = st.value_path(calm, vol, impl=impl, side="short", hedge=False, exit="profit:0.5")
    assert len(rows) == e + 1 and rows["cum_pnl"].iloc[-1] >= 0.5 * rows["value"][0]
    assert rows["cum_pnl"].iloc[-2] < 0.5 * rows["value"][0]
    # stop loss of a long straddle when implied vol collapses
    crush = np.linspace(0.4, 0.1, 64)
    held_l = st.value_path(calm, crush, impl=impl, hedge=False)
    e = _first(held_l["cum_pnl"].to_numpy() <= -0.3 * held_l["value"][0])
    rows = st.value_path(calm, crush, impl=impl, hedge=False, exit="loss:0.3,days:60")
    assert len(rows) == e + 1


def test_exits_do_not_look_ahead(small_market):
    """Changing every price after a straddle's exit close changes nothing up to it."""
    rng = np.random.default_rng(3)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 64)))
    price[0] = 100.0
    vol = np.full(64, 0.3)
    for opts in (dict(exit="profit:0.2,loss:0.2", hedge=False),
                 dict(exit="profit:0.03,loss:0.03"), dict(exit="days:9", spread="vol:1")):
        for impl in CPU_IMPLS:
            a = st.value_path(price, vol, impl=impl, hedge_cost_bps=3, **opts)
            e = len(a) - 1
            assert e < 63
            p2 = price.copy()
            p2[e + 1:] *= 1.5
            b = st.value_path(p2, vol, impl=impl, hedge_cost_bps=3, **opts)
            pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("opts", SPECS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_structures_implementations_match_the_reference(small_market, opts):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=3, tenor=40)
    kw = dict(rate=0.02, side="short", hedge=True, **opts)
    ref = st.backtest(store, sched, impl="reference", **kw)
    for impl in ("numpy", "numba"):
        got = st.backtest(store, sched, impl=impl, chunk_size=37, **kw)
        core.compare_rows(got.rows, ref.rows, rtol=RTOL)
        core.compare_rows(got.summary, ref.summary, rtol=RTOL)
        assert got.n_rows == ref.rows.num_rows
    cpu = st.backtest(store, sched, impl="cupy", device="cpu", **kw)
    assert cpu.rows.equals(st.backtest(store, sched, impl="numpy", **kw).rows)
    summ = ref.summary
    assert (summ["hedged_pnl"] == summ["pnl"] + summ["hedge_pnl"]).all()
    np.testing.assert_allclose(summ["exit_value"], ref.frame().groupby(
        "straddle_id")["value"].last().to_numpy(), rtol=0)


def test_new_options_identical_for_any_n_jobs_backend_and_chunk(small_market, dask_address,
                                                                 tmp_path):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=4, tenor=30)
    for opts in (SPECS[3], SPECS[5]):         # every backend, output and layout
        for impl in ("numba", "numpy"):
            base = st.backtest(store, sched, impl=impl, chunk_size=10_000, **opts)
            book = base.portfolio()
            for backend, n_jobs, chunk in (("sequential", 1, 7), ("threads", 2, 50),
                                           ("loky", 2, 100), ("dask", 2, 64)):
                if impl == "numpy" and backend in ("loky", "dask"):
                    continue
                kw = dict(impl=impl, backend=backend, n_jobs=n_jobs, chunk_size=chunk,
                          scheduler=dask_address, progress=False, **opts)
                got = st.backtest(store, sched, **kw)
                assert got.rows.equals(base.rows), (opts, impl, backend)
                assert got.summary.equals(base.summary)
                pd.testing.assert_frame_equal(got.portfolio("notional"),
                                              base.portfolio("notional"), check_exact=True)
                summ = st.backtest(store, sched, output="summary", **kw)
                assert summ.rows is None and summ.summary.equals(base.summary)
                for layout in ("rows", "normalized"):
                    ds = st.backtest(store, sched, output="parquet", layout=layout,
                                     path=tmp_path / "ds", **kw)
                    assert ds.dataset().read().equals(base.rows)
                    pd.testing.assert_frame_equal(ds.portfolio(), book, check_exact=True)
    for opts in SPECS[:3] + [SPECS[4], SPECS[6]]:   # every other option: chunks and threads
        for impl in ("numba", "numpy"):
            base = st.backtest(store, sched, impl=impl, chunk_size=10_000, **opts)
            for n_jobs, chunk in ((1, 7), (2, 45)):
                got = st.backtest(store, sched, impl=impl, n_jobs=n_jobs, chunk_size=chunk,
                                  **opts)
                assert got.rows.equals(base.rows) and got.summary.equals(base.summary), opts
                pd.testing.assert_frame_equal(got.portfolio(), base.portfolio(),
                                              check_exact=True)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("opts", [{}, SPECS[3], SPECS[5], SPECS[6]], ids=["seed", "strangle",
                                                                          "exits", "put-loss"])
def test_normalized_dataset_reads_back_todays_rows(small_market, tmp_path, impl, opts):
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2003, per_month=4, tenor=30)
    mem = st.backtest(store, sched, impl=impl, rate=0.01, side="short", **opts)
    out = tmp_path / "ds"
    bt = st.backtest(store, sched, impl=impl, rate=0.01, side="short", output="parquet",
                     path=out, layout="normalized", chunk_size=50, n_jobs=2,
                     backend="loky" if impl == "numba" else "threads", **opts)
    assert sorted(p.name for p in out.iterdir()) == ["days", "market", "meta.json", "summary"]
    ds = st.open_dataset(out)
    assert ds.read().equals(mem.rows)                        # bit for bit, every column
    assert bt.frame().equals(mem.frame()) and bt.summary.equals(mem.summary)
    assert len(list((out / "days").glob("*.parquet"))) == -(-len(sched) // 50)
    assert pa.concat_tables(list(ds.iter_parts())).equals(mem.rows)
    for s in (0, 77, len(sched) - 1):
        sid = int(sched.straddle_id[s])
        pd.testing.assert_frame_equal(bt.straddle(sid), mem.straddle(sid))
    days = pq.read_table(out / "days")
    assert days.column_names == list(st.dataset.day_columns(st.parse_spec(**opts)))
    row_bytes = sum(f.stat().st_size for f in (out / "days").iterdir()) / mem.n_rows
    assert row_bytes < 8 * len(days.column_names) + 3     # plain float64, no per-row ids
    with pytest.raises(ValueError, match="was not valued"):
        bt.straddle(10**9)


def test_failed_normalized_stream_leaves_no_partial_dataset(small_market, tmp_path,
                                                            monkeypatch):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=4, tenor=30)
    out = tmp_path / "ds"
    for opts, target, name in (({}, chunks, "value_chunk"),
                               (dict(exit="days:5"), structures, "value_chunk")):
        st.backtest(store, sched, output="parquet", path=out, chunk_size=10,
                    layout="normalized", **opts)
        before = sorted(p.name for p in (out / "days").iterdir())
        real = getattr(target, name)
        calls = {"n": 0}

        def flaky(*a, **k):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("disk full")
            return real(*a, **k)

        monkeypatch.setattr(target, name, flaky)
        with pytest.raises(RuntimeError, match="disk full"):
            st.backtest(store, sched, output="parquet", path=out, chunk_size=10,
                        backend="sequential", layout="normalized", **opts)
        monkeypatch.setattr(target, name, real)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
        assert sorted(p.name for p in (out / "days").iterdir()) == before


def test_book_nets_overlapping_positions_by_date(small_market):
    """The book, written out: per date the sum over open positions of the day's net P&L
    over each one's premium (or entry price)."""
    store, assets = small_market
    sched = st.build_schedule(store, assets[:2], 2002, 2002, per_month=3, tenor=25)
    bt = st.backtest(store, sched, spread="vol:1", hedge_cost_bps=5, exit="profit:0.5")
    df, summ = bt.frame(), bt.summary
    for normalize, size in (("premium", "entry_value"), ("notional", "K")):
        per = df.merge(summ[["straddle_id", size]].rename(columns={size: "size"}),
                       on="straddle_id")
        per["x"] = (per["pnl"] + per["hedge_pnl"]) / per["size"]
        want = per.groupby("date")["x"].sum()
        book = bt.portfolio(normalize)
        np.testing.assert_allclose(book["pnl"], want.reindex(book.index, fill_value=0.0),
                                   rtol=1e-12, atol=1e-15)
        assert (book["open"] == per.groupby("date").size().reindex(book.index,
                                                                    fill_value=0)).all()
        total = (summ["hedged_pnl"] / summ[size]).sum()
        assert book["equity"].iloc[-1] == pytest.approx(total, rel=1e-10)
        peak = np.maximum.accumulate(np.maximum(book["equity"].to_numpy(), 0))
        np.testing.assert_array_equal(book["drawdown"], book["equity"] - peak)
    plain = st.backtest(store, sched, hedge=False).portfolio()
    assert plain["equity"].iloc[-1] == pytest.approx(
        st.backtest(store, sched, hedge=False).summary["return"].sum(), rel=1e-10)
    with pytest.raises(ValueError, match="normalize must be one of"):
        bt.portfolio("gross")
    with pytest.raises(ValueError, match="needs the rows"):
        st.backtest(store, sched, output="summary").portfolio()


def test_per_year_table_hand_computed():
    idx = pd.to_datetime(["2020-12-30", "2020-12-31", "2021-01-04", "2021-01-05",
                          "2021-01-06"])
    book = pd.DataFrame({"pnl": [1.0, -3.0, 2.0, -1.0, -1.0], "open": [1, 2, 2, 3, 1]},
                        index=idx)
    t = book_mod.per_year(book)
    assert list(t.index) == ["2020", "2021", "all"]
    assert t.loc["2020", "pnl"] == -2.0 and t.loc["2021", "pnl"] == 0.0
    assert t.loc["2020", "max_drawdown"] == -3.0          # peak 1, low -2
    assert t.loc["2021", "max_drawdown"] == -2.0          # peak 2, low 0
    assert t.loc["all", "max_drawdown"] == -3.0 and t.loc["all", "worst_day"] == -3.0
    sd = np.std([2.0, -1.0, -1.0], ddof=1)
    assert t.loc["2021", "ann_vol"] == pytest.approx(sd * math.sqrt(252))
    assert t.loc["2021", "sharpe"] == 0.0 and t.loc["2021", "mean_open"] == 2.0


@pytest.mark.parametrize("kw,match", [
    (dict(structure="condor"), "structure must be one of"),
    (dict(wing="moneyness:0.1"), "a straddle is struck at the money"),
    (dict(structure="strangle", wing=0.25), "wing must be None"),
    (dict(spread="vol:-1"), r"spread='vol:-1': the width in vol points must be in \[0, 100\]"),
    (dict(hedge_cost_bps=-2), "hedge_cost_bps must be >= 0"),
    (dict(exit="days:x"), "exit days must be an integer"), (dict(exit=5), "exit must be"),
    (dict(layout="columns"), "layout must be one of"),
    (dict(impl="numba", structure="call", device="gpu"), "device='gpu' needs impl='cupy'"),
])
def test_bad_structure_parameters(small_market, kw, match):
    store, assets = small_market
    sched = st.build_schedule(store, assets[:1], 2001, 2001, per_month=1, tenor=5)
    with pytest.raises(ValueError, match=match):
        st.backtest(store, sched, **kw)


def test_new_options_refused_on_the_gpu(small_market, monkeypatch):
    """The CUDA kernels value the seed's straddle: other options on a GPU are refused with
    the way out named (the seed's options still go to the GPU path)."""
    monkeypatch.setattr(structures, "resolve_device", lambda device: "gpu")
    with pytest.raises(ValueError, match="not on the GPU.*impl='numba'"):
        structures.check_device("cupy", "auto")
    assert structures.check_device("numba", "auto") == "numba"
    monkeypatch.setattr(structures, "resolve_device", lambda device: "cpu")
    assert structures.check_device("cupy", "auto") == "numpy"


def test_run_and_compare_impls_take_the_new_options():
    bt = st.run(assets=1, start_year=2001, end_year=2001, per_month=2.0, tenor=21,
                structure="strangle", wing="moneyness:0.05", spread=1.0, hedge_cost_bps=1.0,
                exit="days:5")
    assert bt.n_rows == bt.n_straddles * 6 and bt.spec.label().startswith("strangle +-5%")
    assert (bt.summary["exit_reason"] == "days").all() and (bt.summary["cost"] > 0).all()
    store, assets = st.load_market("synthetic", assets=1, start_year=2001, end_year=2001,
                                   tenor=21)
    sched = st.build_schedule(store, assets, 2001, 2001, per_month=1, tenor=21)
    t = st.compare_impls(store, sched, repeats=1, structure="put", exit="profit:0.2")
    assert list(t["impl"]) == ["reference", "numpy", "numba"] and (t["speedup"] > 0).all()
    assert t["same_answers"].all()
    # in a fresh interpreter: the seed's warm-up loads the seed's kernel only; with the new
    # options it loads structures_nb's too (from Numba's cache: compiled above)
    code = ("from qbt_lib.straddles import nb, structures_nb, warm_up\n"
            "k = structures_nb.value_structures_nb\n"
            "warm_up('numba')\n"
            "assert nb.value_straddles_nb.signatures and not k.signatures\n"
            "warm_up('numba', structure='call', exit='days:3')\n"
            "assert k.signatures")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_gpu_rows_through_the_normalized_layout_and_new_options_refused(small_market,
                                                                       tmp_path):
    """On a GPU: the CUDA rows stream to the normalized layout and read back bit for bit
    (the reader re-derives value/P&L as the kernels do, --fmad=false); the new options are
    refused with impl='cupy' and run on the CPU paths."""
    store, assets = small_market
    sched = st.build_schedule(store, assets, 2001, 2002, per_month=4, tenor=30)
    mem = st.backtest(store, sched, impl="cupy", device="gpu", rate=0.02)
    ds = st.backtest(store, sched, impl="cupy", device="gpu", rate=0.02, output="parquet",
                     path=tmp_path / "ds", layout="normalized", chunk_size=50)
    assert ds.dataset().read().equals(mem.rows)
    with pytest.raises(ValueError, match="not on the GPU"):
        st.backtest(store, sched, impl="cupy", device="gpu", structure="strangle")
    with pytest.raises(ValueError, match="not on the GPU"):
        st.backtest(store, sched, impl="cupy", exit="days:5")           # device="auto"
