"""waves: the fast impulse search equals the original algorithm (the reference), the quirks
of docs/waves.md hold, reported patterns pass an independent re-check, results do not depend
on the engine, backend or n_jobs, bad input is rejected by name, and the package has the
shape every workload has (params, dispatch table, Result, no logic in ``__init__``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qbt_lib import device, metrics, paths, waves
from qbt_lib.waves import engines, enums, gpu, nb, reference

PIVOTS = [f"p{k}" for k in range(6)]


# --------------------------------------------------------------------------- test data
def zigzag(rng, n, tick=0.5, noise=0.3, maxleg=5, flat_p=0.05, gap_p=0.05):
    """Pattern-rich bars: alternating legs with an upward bias, prices on a tick grid (equal
    highs and lows), flat bars (high == low), flat stretches (repeated bars) and gaps."""
    close, x, up = [], 100.0, True
    while len(close) < n:
        m = int(rng.integers(1, maxleg))
        amp = rng.uniform(2, 10) if up else rng.uniform(0.5, 6)
        for _ in range(m):
            x += (amp / m) * (1 if up else -1)
            close.append(x)
        up = not up
    c = np.array(close[:n])
    c = c + np.cumsum(np.where(rng.random(n) < gap_p, rng.normal(0, 3, n), 0.0))
    c = c - c.min() + 20
    hi = c + np.abs(rng.normal(0, noise, n))
    lo = c - np.abs(rng.normal(0, noise, n))
    if tick:
        hi, lo = np.round(hi / tick) * tick, np.round(lo / tick) * tick
        lo = np.minimum(lo, hi)
    flat = rng.random(n) < flat_p
    hi[flat] = lo[flat] = np.round(c[flat])
    for _ in range(int(rng.integers(0, 3))):
        a, k = int(rng.integers(0, n - 4)), int(rng.integers(2, 5))
        hi[a:a + k], lo[a:a + k] = hi[a], lo[a]
    return np.maximum(lo, 1.0), np.maximum(hi, 1.0)


def garch_bars(n, seed):
    df = waves.load_source("synthetic", 1, n, seed)["SYM000"]
    return df["low"].to_numpy(), df["high"].to_numpy()


def _rows(piv):
    return [tuple(r) for r in np.asarray(piv).tolist()]


# --------------------------------------------------------------------------- tuples
def test_skip_tuples_are_the_originals():
    assert reference.n_tuples(15) == 579_195
    for u in (1, 2, 4):
        tuples = list(reference.skip_tuples(u))
        assert len(tuples) == len(set(tuples)) == reference.n_tuples(u)
        for t in tuples:   # once a skip is 0, every later skip is 0
            z = t.index(0) if 0 in t else 5
            assert all(v == 0 for v in t[z:])


# --------------------------------------------------------------------------- numba == reference
@pytest.mark.parametrize("seed", range(6))
def test_numba_equals_reference_random_series(seed):
    """Exact pivot sets from random start bars: tick-grid zigzags (equal highs/lows, flat
    bars and stretches, gaps) and GARCH bars; both rule sets, both directions, windows."""
    rng = np.random.default_rng(seed)
    checked = found = 0
    for trial in range(4):
        if trial == 3:
            lo, hi = garch_bars(90, seed)
        else:
            lo, hi = zigzag(rng, 60, tick=(0.5, 0.25, 0.0)[trial], noise=(0.2, 0.3, 0.5)[trial])
        for direction in ("up", "down"):
            L, H = (-hi, -lo) if direction == "down" else (lo, hi)
            for rules in ("compat", "diagonal"):
                up_to = int(rng.integers(2, 6))
                starts = np.sort(rng.choice(len(lo), size=6, replace=False))
                ends = np.minimum(starts + rng.integers(8, 60, size=6), len(lo))
                job, piv = waves.scan_series(lo, hi, starts, up_to, rules, direction,
                                             ends=ends)
                for j, (s, e) in enumerate(zip(starts, ends)):
                    expect, _ = reference.find_impulses(L[:e], H[:e], int(s), up_to, rules)
                    assert _rows(piv[job == j]) == expect, (trial, direction, rules, s, e)
                    checked += 1
                    found += len(expect)
    assert checked == 96 and found > 0


def test_numba_equals_reference_every_start_bar():
    lo, hi = zigzag(np.random.default_rng(42), 50, tick=0.5, noise=0.5, maxleg=3)
    job, piv = waves.scan_series(lo, hi, up_to=5)
    got = {s: _rows(piv[job == s]) for s in range(len(lo))}
    expect = {s: reference.find_impulses(lo, hi, s, 5)[0] for s in range(len(lo))}
    assert got == expect
    assert sum(map(len, expect.values())) >= 5


def test_find_impulses_impls_agree():
    lo, hi = garch_bars(200, 8)
    for s in (int(np.argmin(lo[:100])), 5, 150):
        for direction in ("up", "down"):
            fast = waves.find_impulses(lo, hi, s, up_to=5, direction=direction)
            ref = waves.find_impulses(lo, hi, s, up_to=5, direction=direction, impl="reference")
            assert _rows(fast) == _rows(ref)


# --------------------------------------------------------------------------- the quirks (docs/waves.md)
# One clean impulse, bars 0..11: P0=10 (bar 0), P1=20 (2), P2=18 (3), P3=30 (6), P4=25 (8),
# P5=33 (10). len1 = 10 and len2 = 2: w2_2 holds only because it is ``>=``.
IMPULSE_LO = np.array([10, 11, 14, 18, 18.5, 20, 24, 27, 25, 26, 30, 31], dtype=float)
IMPULSE_HI = np.array([10.5, 15, 20, 19.5, 21, 25, 30, 29, 26, 28, 33, 32], dtype=float)


def test_w2_2_is_greater_or_equal():
    assert 0.2 * 10.0 == 2.0   # the boundary is exact in float64
    expect = [(0, 2, 3, 6, 8, 10)]
    assert _rows(waves.find_impulses(IMPULSE_LO, IMPULSE_HI, 0, up_to=1)) == expect
    assert reference.find_impulses(IMPULSE_LO, IMPULSE_HI, 0, 1)[0] == expect
    lo = IMPULSE_LO.copy()
    lo[3] = 18.000001          # len2 just below 0.2*len1: rejected by both
    assert len(waves.find_impulses(lo, IMPULSE_HI, 0, up_to=1)) == 0
    assert reference.find_impulses(lo, IMPULSE_HI, 0, 1)[0] == []


def test_equal_top_stalls_the_remaining_skips():
    lo = np.array([10, 11.5, 10, 11, 10, 10, 10], dtype=float)
    hi = np.array([10.5, 12, 11, 12, 12, 11, 11], dtype=float)
    # first top at bar 1 (12); the next step meets bar 3 == 12 (taken as candidate) and
    # bar 4 == 12 ends it with cand == top: the top stays, for every further skip
    for skip in range(4):
        assert reference.monowave_up(lo, hi, 0, skip) == (0, 1, 10.0, 12.0)
    tables = nb.tables_nb(lo, hi)
    rise, _, nge_h = tables[0], tables[1], tables[2]
    assert nb._up_first(lo, hi, rise, 0, len(lo)) == 1
    assert nb._up_step(lo, hi, rise, nge_h, 0, 1, len(lo)) == 1   # a stall
    hi2 = hi.copy()
    hi2[4] = 13                # a higher bar instead: the run crosses the top and moves it
    assert reference.monowave_up(lo, hi2, 0, 1) == (0, 4, 10.0, 13.0)
    t2 = nb.tables_nb(lo, hi2)
    assert nb._up_step(lo, hi2, t2[0], t2[2], 0, 1, len(lo)) == 4
    # the run still rising when the data ends: no monowave
    assert reference.monowave_up(lo, hi2, 0, 1) is not None
    assert reference.monowave_up(lo[:5], hi2[:5], 0, 1) is None
    assert nb._up_step(lo, hi2, t2[0], t2[2], 0, 1, 5) == -1


def test_down_monowave_extra_invalidation():
    lo = np.array([19, 18, 18.5, 19, 17, 17.5], dtype=float)
    hi = np.array([20, 19, 19.5, 21, 18, 18.5], dtype=float)
    assert reference.monowave_down(lo, hi, 0, 0) == (0, 1, 18.0, 20.0)
    # skip 1 moves the bottom to bar 4, past bar 3 whose high 21 > 20: invalid
    assert reference.monowave_down(lo, hi, 0, 1) is None
    t = nb.tables_nb(lo, hi)
    assert nb._down_step(lo, hi, t[1], t[4], t[3], 0, 1, len(lo)) == -1
    hi_ok = hi.copy()
    hi_ok[3] = 19.9
    assert reference.monowave_down(lo, hi_ok, 0, 1) == (0, 4, 17.0, 20.0)
    # the up monowave has no such check: the mirror bars give a valid up monowave
    assert reference.monowave_up(-hi, -lo, 0, 1) == (0, 4, -20.0, -17.0)


def test_empty_slice_after_wave4_is_a_reject():
    # waves 3 and 4 both end where they start (two equal flat bars): lows[end2:end4] is
    # empty - the original takes np.min of it and crashes; here the chain is rejected
    lo = np.array([10, 11, 12, 12, 13, 14], dtype=float)
    hi = np.array([10.5, 15, 12, 12, 14, 15], dtype=float)
    assert reference.impulse_chain(list(lo), list(hi), 0, (0, 0, 0, 0, 0)) is None
    w1 = reference.monowave_up(lo, hi, 0, 0)
    w2 = reference.monowave_down(lo, hi, w1[1], 0)
    w3 = reference.monowave_up(lo, hi, w2[1], 0)
    w4 = reference.monowave_down(lo, hi, w3[1], 0)
    assert w2[1] == w3[1] == w4[1] == 2
    assert len(waves.find_impulses(lo, hi, 0, up_to=3)) == 0


# --------------------------------------------------------------------------- independent re-check
def _spec_rules(lo, hi, piv):
    """The compat rules and chain checks from docs/waves.md's formulas, written out again."""
    s0, e1, e2, e3, e4, e5 = (int(v) for v in piv)
    p0 = lo[s0]
    p1 = hi[e1] if e1 > s0 else lo[s0]
    p2 = lo[e2] if e2 > e1 else hi[e1]
    p3 = hi[e3] if e3 > e2 else lo[e2]
    p4 = lo[e4] if e4 > e3 else hi[e3]
    p5 = hi[e5] if e5 > e4 else lo[e4]
    len1, len2, len3, len4, len5 = p1 - p0, hi[e1] - p2, p3 - lo[e2], hi[e3] - p4, p5 - lo[e4]
    dur1, dur2, dur3 = e1 - s0, e2 - e1, e3 - e2
    return {
        "chain_w4": e4 > e2 and not p2 > lo[e2:e4].min(),
        "chain_w5": e5 == e4 or not p4 > lo[e4:e5].min(),
        "w2_1": p2 > p0, "w2_2": len2 >= 0.2 * len1, "w2_3": 9 * dur2 > dur1,
        "w3_1": not (len3 < len5 and len3 < len1), "w3_2": p3 > p1,
        "w3_3": len3 >= len1 / 3.0, "w3_4": len3 > len2, "w3_5": 7 * dur3 > dur1,
        "w4_1": p4 > p1, "w4_2": len4 > len2 / 3.0, "w5_1": p5 > p3, "w5_2": len5 < 2.0 * len1,
    }


def _skips_reaching(lo, hi, start, end, up, up_to):
    mono = reference.monowave_up if up else reference.monowave_down
    return {x for x in range(up_to) if (w := mono(lo, hi, start, x)) is not None and w[1] == end}


def test_reported_patterns_pass_an_independent_recheck():
    lo, hi = garch_bars(400, 3)
    up_to = 15
    job, piv = waves.scan_series(lo, hi, up_to=up_to)
    assert len(piv) > 50
    assert (np.diff(job) >= 0).all()
    for row in piv[::3]:
        rules = _spec_rules(lo, hi, row)
        assert all(rules.values()), (row, [k for k, v in rules.items() if not v])
        # every wave is a monowave from the previous end, with a valid skip tuple
        free = True
        for k in range(5):
            skips = _skips_reaching(lo, hi, int(row[k]), int(row[k + 1]), k % 2 == 0, up_to)
            assert skips, (row, k)
            if not free:
                assert 0 in skips, (row, k)
            free = free and any(x > 0 for x in skips)


# --------------------------------------------------------------------------- engines agree
@pytest.mark.parametrize("up_to", [1, 2, 6, 15])
def test_array_module_search_equals_numba_on_cpu(up_to):
    """gpu.py run with xp=numpy visits the same tree: same patterns and counters."""
    rng = np.random.default_rng(up_to)
    series, jobs = [], []
    for i in range(6):
        lo, hi = zigzag(rng, 120) if i % 2 else garch_bars(150, i)
        if i % 3 == 2:
            lo, hi = -hi, -lo
        n = len(lo)
        st = np.arange(n)
        en = np.minimum(st + 60, n) if i % 2 else np.full(n, n)
        series.append((lo, hi))
        jobs.append((st, en))
    for rs in (enums.COMPAT, enums.DIAGONAL):
        s_of, lj, piv, rej, built, kept = gpu.search(series, jobs, up_to, rs, xp=np,
                                                     batch_jobs=250)
        for i, ((lo, hi), (st, en)) in enumerate(zip(series, jobs)):
            job, p, (r, b, k) = nb.search(lo, hi, st, en, up_to, rs)
            m = s_of == i
            np.testing.assert_array_equal(lj[m], job)
            np.testing.assert_array_equal(piv[m], p)
            np.testing.assert_array_equal(rej[i], r)
            np.testing.assert_array_equal(built[i], b)
            np.testing.assert_array_equal(kept[i], k)


@pytest.mark.gpu
def test_gpu_equals_cpu():
    frames = waves.load_source("synthetic", 4, 800, 5)
    kw = dict(window=300, overlap=0.5, up_to=15, rules=["compat", "diagonal"],
              directions=["up", "down"])
    cpu = waves.scan(frames, device="cpu", **kw)
    dev = waves.scan(frames, device="gpu", gpu_batch_jobs=700, **kw)
    pd.testing.assert_frame_equal(cpu.patterns, dev.patterns)
    pd.testing.assert_frame_equal(cpu.rejects, dev.rejects)


# --------------------------------------------------------------------------- the scan
@pytest.fixture(scope="module")
def frames():
    return waves.load_source("synthetic", 3, 240, 11)


def test_scan_reference_equals_numba_per_window(frames):
    kw = dict(window=80, overlap=0.5, max_start_points=4, up_to=4,
              rules=["compat", "diagonal"], directions=["up", "down"])
    fast = waves.scan(frames, **kw)
    ref = waves.scan(frames, impl="reference", **kw)
    assert len(fast.patterns) > 0
    pd.testing.assert_frame_equal(fast.patterns, ref.patterns)
    # each window is the original run on that window's bars
    p = fast.patterns
    row = p[(p["direction"] == "up") & (p["rules"] == "compat")].iloc[0]
    df = frames[row["symbol"]]
    w0 = int(row["window_start"])
    lo = df["low"].to_numpy()[w0:w0 + 80]
    hi = df["high"].to_numpy()[w0:w0 + 80]
    found, _ = reference.find_impulses(lo, hi, int(row["p0"]) - w0, 4)
    assert tuple(int(row[c]) - w0 for c in PIVOTS) in found
    # the start bars are the window's lowest lows
    starts = p[(p["direction"] == "up") & (p["window_start"] == w0) &
               (p["symbol"] == row["symbol"])]["p0"].unique() - w0
    assert set(starts) <= set(np.argsort(lo, kind="stable")[:4])


def test_scan_rows_prices_dates_and_order(frames):
    res = waves.scan(frames, up_to=8, directions=["up", "down"])
    p = res.patterns
    assert list(p.columns) == waves.PATTERN_COLUMNS
    keys = ["symbol", "direction", "rules", "window_start", *PIVOTS]
    assert p.sort_values(keys, kind="stable").index.equals(p.index)
    for _, row in p.groupby("direction", observed=True).head(5).iterrows():
        df = frames[row["symbol"]]
        sign = 1 if row["direction"] == "up" else -1
        assert row["date0"] == df.index[row["p0"]]
        if row["direction"] == "up":
            assert row["price0"] == df["low"].iloc[row["p0"]]
            assert row["price5"] == df["high"].iloc[row["p5"]]
        else:
            assert row["price0"] == df["high"].iloc[row["p0"]]
            assert row["price5"] == df["low"].iloc[row["p5"]]
        assert sign * (row["price5"] - row["price3"]) > 0 and sign * (row["price3"] - row["price1"]) > 0
    assert ((p["score"] > 0) & (p["score"] <= 1)).all()
    counts = res.counts()
    assert counts.to_numpy().sum() == len(p)
    assert res.rejects_by_check().to_numpy().sum() > 0


def test_pivots_are_positions_in_each_symbols_own_series(frames):
    """Symbols on different calendars share one price store (union of dates); pivots and
    prices still refer to each symbol's own bars as loaded."""
    uneven = {"A": frames["SYM001"].iloc[40:], "B": frames["SYM002"].iloc[:200]}
    p = waves.scan(uneven, up_to=8).patterns
    assert set(p["symbol"]) == {"A", "B"}
    for _, row in p.iterrows():
        df = uneven[row["symbol"]]
        for k in (0, 3, 5):
            assert row[f"date{k}"] == df.index[row[f"p{k}"]]
        assert row["price0"] == df["low"].iloc[row["p0"]]
    alone = waves.scan({"A": uneven["A"]}, up_to=8).patterns
    np.testing.assert_array_equal(alone[PIVOTS].to_numpy(),
                                  p[p["symbol"] == "A"][PIVOTS].to_numpy())


def test_top_k_keeps_the_best_and_large_k_keeps_all(frames):
    kw = dict(window=120, overlap=0.25, up_to=10)
    full = waves.scan(frames, **kw).patterns
    assert len(full) > 10
    pd.testing.assert_frame_equal(waves.scan(frames, top_k=10**6, **kw).patterns, full)
    best = waves.scan(frames, top_k=1, **kw).patterns
    groups = full.groupby(["symbol", "window_start"], observed=True)["score"].max()
    assert len(best) == len(groups)
    assert np.allclose(best.set_index(["symbol", "window_start"])["score"].sort_index(),
                       groups.sort_index())


def test_score_weights_and_perfect_pattern():
    assert sum(t[3] for t in enums.SCORE_TERMS) == pytest.approx(1.0)
    # len1 = 10, len2 = 5 (0.5), len3 = 16.18 (1.618), len4 = 0.382*16.18, len5 = 10
    p = [10.0, 20.0, 15.0, 31.18, 31.18 - 0.382 * 16.18, 0.0]
    p[5] = p[4] + 10.0
    L = np.array([p[0], 0, p[2], 0, p[4], 0])
    H = np.array([0, p[1], 0, p[3], 0, p[5]])
    piv = np.array([[0, 1, 2, 3, 4, 5]])
    assert waves.score_patterns(L, H, piv)[0] == pytest.approx(1.0)
    # a wave-3 extension of 1.0 instead of 1.618 costs part of its 0.35 weight
    H2 = H.copy()
    H2[3] = 25.0
    assert 0.6 < waves.score_patterns(L, H2, piv)[0] < 0.95


@pytest.mark.parametrize("backend", ["threads", "loky"])
def test_results_do_not_depend_on_backend_or_n_jobs(frames, backend, monkeypatch):
    kw = dict(window=100, overlap=0.5, up_to=8, directions=["up", "down"],
              rules=["compat", "diagonal"], progress=False)
    base = waves.scan(frames, n_jobs=1, backend="sequential", **kw)
    best = waves.scan(frames, n_jobs=1, backend="sequential", top_k=2, **kw)
    monkeypatch.setattr(waves.engines, "CHUNK_JOBS", 50)   # several tasks per symbol and window
    other = waves.scan(frames, n_jobs=2, backend=backend, **kw)
    pd.testing.assert_frame_equal(base.patterns, other.patterns)
    pd.testing.assert_frame_equal(base.rejects, other.rejects)
    # top-k is cut per chunk in the workers, then again per window: the same rows
    pd.testing.assert_frame_equal(best.patterns,
                                  waves.scan(frames, n_jobs=2, backend=backend, top_k=2,
                                             **kw).patterns)


def test_results_on_dask_equal_sequential(frames, dask_address):
    kw = dict(window=100, overlap=0.5, up_to=8, progress=False)
    base = waves.scan(frames, n_jobs=1, backend="sequential", **kw)
    other = waves.scan(frames, n_jobs=2, backend="dask", scheduler=dask_address, **kw)
    pd.testing.assert_frame_equal(base.patterns, other.patterns)


def test_device_auto_falls_back_to_the_same_answers(frames):
    a = waves.scan(frames, up_to=6, device="auto").patterns
    b = waves.scan(frames, up_to=6, device="cpu").patterns
    pd.testing.assert_frame_equal(a, b)


def test_window_bounds_and_start_points():
    assert waves.window_bounds(100, None) == [(0, 100)]
    assert waves.window_bounds(100, 200, 0.5) == [(0, 100)]
    w = waves.window_bounds(100, 40, 0.5)
    assert w[0] == (0, 40) and w[-1] == (60, 100) and all(b - a == 40 for a, b in w)
    assert waves.window_bounds(105, 50, 0.0) == [(0, 50), (50, 100), (55, 105)]
    lows = np.array([5.0, 1.0, 3.0, 1.0, 2.0])
    np.testing.assert_array_equal(waves.start_points(lows, 2), [1, 3])
    np.testing.assert_array_equal(waves.start_points(lows, 3), [1, 3, 4])
    np.testing.assert_array_equal(waves.start_points(lows, None), np.arange(5))


# --------------------------------------------------------------------------- output and input
def test_write_patterns_roundtrip_and_atomic(frames, tmp_path, monkeypatch):
    p = waves.scan(frames, up_to=6).patterns
    out = waves.write_patterns(p, tmp_path / "patterns.parquet")
    back = pd.read_parquet(out)
    assert len(back) == len(p)
    np.testing.assert_array_equal(back[PIVOTS].to_numpy(), p[PIVOTS].to_numpy())
    assert list(back["symbol"].astype(str)) == list(p["symbol"].astype(str))

    import pyarrow.parquet as pq

    def broken(table, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        waves.write_patterns(p, tmp_path / "new.parquet")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["patterns.parquet"]


def test_compare_impls_same_work_same_answers():
    lo, hi = garch_bars(120, 2)
    t = waves.compare_impls(lo, hi, int(np.argmin(lo[:60])), up_to=4, impls="numba,numpy",
                            max_seconds=30, repeats=3)
    assert list(t.index) == ["reference", "numba", "numpy"]
    assert t.loc["reference", "complete"] and t["same_answers"].all()
    assert (t["tuples"] == reference.n_tuples(4)).all()
    assert (t["patterns"] == t.loc["reference", "patterns"]).all()
    assert t.loc["numba", "repeats"] == 3 and (t["min"] <= t["seconds"]).all()
    assert t.loc["numba", "speedup"] == pytest.approx(
        t.loc["numba", "tuples_per_s"] / t.loc["reference", "tuples_per_s"])


def test_compare_impls_capped_reference_is_a_subset():
    lo, hi = garch_bars(300, 4)
    t = waves.compare_impls(lo, hi, int(np.argmin(lo)), up_to=12, max_seconds=0.05, repeats=2)
    assert not t.loc["reference", "complete"]
    assert t.loc["reference", "tuples"] < t.loc["numba", "tuples"] == reference.n_tuples(12)
    assert t["same_answers"].all()


@pytest.mark.parametrize("kw,match", [
    (dict(up_to=0), "up_to must be >= 1"), (dict(up_to=31), "up_to must be <= 30"),
    (dict(window=9), "window must be >= 10"), (dict(rules="impulse"), "rules must be one of"),
    (dict(directions="sideways"), "directions must be one of"),
    (dict(overlap=1.0), "overlap must be < 1"), (dict(max_start_points=-1), "max_start_points"),
    (dict(top_k=-1), "top_k must be >= 0"), (dict(impl="magic"), "impl must be one of"),
])
def test_bad_parameters_are_named(frames, kw, match):
    with pytest.raises(ValueError, match=match):
        waves.scan(frames, **kw)


def test_bad_prices_and_start_are_named():
    lo, hi = garch_bars(60, 1)
    with pytest.raises(ValueError, match="start must be <= 59"):
        waves.find_impulses(lo, hi, 60)
    with pytest.raises(ValueError, match="start must be >= 0"):
        waves.find_impulses(lo, hi, -1)
    with pytest.raises(ValueError, match="outside the data"):
        waves.scan_series(lo, hi, starts=[3, 99])
    for col, val, rule in (("low", np.nan, "low is NaN or inf"), ("high", -1.0, "price <= 0"),
                           ("low", 0.0, "price <= 0"),
                           ("high", 0.5, r"high < max\(open, close\)")):
        df = waves.load_source("synthetic", 2, 60, 0)
        bad = df["SYM001"].copy()
        bad.iloc[17, bad.columns.get_loc(col)] = val
        df["SYM001"] = bad
        with pytest.raises(ValueError, match=rf"SYM001: row 17 \(\d{{4}}-\d\d-\d\d\): {rule}"):
            waves.scan(df)
    with pytest.raises(ValueError, match="SYM000: 5 bars"):
        waves.scan(waves.load_source("synthetic", 1, 10, 0)["SYM000"].iloc[:5].pipe(
            lambda d: {"SYM000": d}))


# --------------------------------------------------------------------------- parameters
def test_unknown_parameter_is_named_with_the_known_ones(frames):
    with pytest.raises(ValueError, match=r"unknown parameter for waves: 'windw'; known: .*window"):
        waves.run(frames, windw=100)


def test_papermill_floats_are_accepted_and_fractions_rejected(frames):
    a = waves.run(frames, window=100.0, up_to=6.0, top_k=2.0, max_start_points=5.0)
    b = waves.run(frames, window=100, up_to=6, top_k=2, max_start_points=5)
    pd.testing.assert_frame_equal(a.patterns, b.patterns)
    assert a.params["up_to"] == 6 and isinstance(a.params["up_to"], int)
    for kw, match in ((dict(up_to=6.5), "up_to must be an integer"),
                      (dict(window="abc"), "window must be an integer"),
                      (dict(n_bars=1e9), "n_bars must be <= 10,000,000"),
                      (dict(adjust="maybe"), "adjust must be true or false"),
                      (dict(backend="mpi"), "backend must be one of"),
                      (dict(device="tpu"), "device must be one of")):
        with pytest.raises(ValueError, match=match):
            waves.run("synthetic", **kw)


def test_params_defaults_are_checked_and_recorded(frames):
    assert set(waves.DEFAULTS) == set(waves.CONSTRAINTS)
    res = waves.run(frames, window="all", max_start_points=0, rules="diagonal, compat,compat",
                    up_to=4)
    p = res.params
    assert p["window"] is None and p["max_start_points"] is None
    assert p["rules"] == ["diagonal", "compat"] and p["directions"] == ["up"]
    assert p["impl"] == "numba" and p["device"] == "cpu" and p["n_jobs"] == 1
    assert p["source"] == "{symbol: DataFrame} (3 symbols)"


def test_series_parameters_are_named():
    lo, hi = garch_bars(60, 1)
    for kw, match in ((dict(rules="both"), "rules must be one of"),
                      (dict(direction="sideways"), "direction must be one of"),
                      (dict(up_to=31), "up_to must be <= 30"),
                      (dict(impl="numbaa"), "impl must be one of")):
        with pytest.raises(ValueError, match=match):
            waves.scan_series(lo, hi, **kw)


# --------------------------------------------------------------------------- dispatch
def test_dispatch_tables_have_every_impl():
    impls = set(waves.IMPLS) - {"auto"}
    assert set(engines.ENGINES) == set(engines.SEARCH) == impls
    assert impls <= set(device.IMPLS)
    # GPU policy: auto stays on the CPU, for a measured reason whose file is in the repo
    assert waves.AUTO_GPU is False
    assert "0.4x of 16 CPU cores" in waves.WHY_CPU
    assert (paths.PROJ_ROOT / "benchmarks/gpu/h200/waves-h200.json").is_file()


@pytest.mark.parametrize("impl", ["reference", "numba", "numpy", "cupy", "auto", "fast"])
def test_every_impl_gives_the_same_scan(frames, impl):
    """One table, one answer: every engine (cupy without a GPU runs its array code on NumPy;
    "fast", the old name, is resolved like "auto") gives the numba scan's rows and counts."""
    kw = dict(window=80, overlap=0.5, max_start_points=3, up_to=4, rules="compat,diagonal",
              directions="up,down", top_k=2)
    base = waves.run(frames, impl="numba", **kw)
    res = waves.run(frames, impl=impl, device="auto", **kw)
    pd.testing.assert_frame_equal(res.patterns, base.patterns)
    if impl != "reference":   # the reference counts nothing
        pd.testing.assert_frame_equal(res.rejects, base.rejects)
        assert res.summary["monowaves_built"] == base.summary["monowaves_built"]
    expect = {"fast": "numba", "auto": "numba"}.get(impl, impl)
    if not device.gpu_available():
        expect = {"cupy": "numpy"}.get(expect, expect)
    assert res.params["impl"] == expect


@pytest.mark.parametrize("impl", ["reference", "numba", "numpy", "cupy"])
def test_every_impl_gives_the_same_series_search(impl):
    lo, hi = zigzag(np.random.default_rng(7), 70)
    st = np.arange(0, 70, 3)
    en = np.minimum(st + 40, 70)
    expect = waves.scan_series(lo, hi, st, up_to=4, rules="diagonal", direction="down", ends=en)
    got = waves.scan_series(lo, hi, st, up_to=4, rules="diagonal", direction="down", ends=en,
                            impl=impl, device="auto")
    np.testing.assert_array_equal(got[0], expect[0])
    np.testing.assert_array_equal(got[1], expect[1])


def test_cpu_impls_refuse_the_gpu_and_the_cpu_refuses_nothing(frames):
    with pytest.raises(ValueError, match="impl='numba' runs on the CPU; device='gpu' needs"):
        waves.run(frames, impl="numba", device="gpu")
    with pytest.raises(ValueError, match="impl='reference' runs on the CPU"):
        waves.scan_series(*garch_bars(40, 0), impl="reference", device="gpu")
    # impl="cupy" with device="cpu": the same array code on NumPy
    assert waves.run(frames, impl="cupy", device="cpu", up_to=3).params["impl"] == "numpy"


def test_warm_up_runs_each_engine():
    for impl in ("numba", "numpy", "reference"):
        assert waves.warm_up(impl, "cpu", up_to=3) >= 0
    with pytest.raises(ValueError, match="impl must be one of"):
        waves.warm_up("magic")


# --------------------------------------------------------------------------- the Result
def test_result_headline_metrics_and_write_metrics(frames, tmp_path):
    res = waves.run(frames, window=100, overlap=0.5, up_to=6, n_jobs=1,
                    output_dir=str(tmp_path / "out"))
    assert isinstance(res, metrics.Result) and res.workload == "waves"
    assert res.frame() is res.patterns
    assert res.overview() == (f"{res.summary['start_bars']:,} start-bar searches "
                              f"({res.summary['tuples']:,} skip tuples in the original's "
                              f"terms), {len(res.patterns):,} patterns kept")
    assert res.headline().startswith("scan: ") and "numba on cpu" in res.headline()
    assert res.speedup() is None
    m = res.metrics()
    assert m["headline"]["speedup_vs_reference"] == "not measured"
    assert m["patterns"] == len(res.patterns) and m["start_bars"] == res.summary["start_bars"]
    lo = frames["SYM000"]["low"].to_numpy()[:100]
    hi = frames["SYM000"]["high"].to_numpy()[:100]
    cmp = waves.compare_impls(lo, hi, int(np.argmin(lo)), up_to=6, repeats=3)
    assert res.add_timings(warm_up_seconds=0.25, comparison=cmp) is res
    assert res.speedup() == pytest.approx(cmp.loc["numba", "speedup"])
    line = res.headline()
    assert "JIT warm-up 0.25 s not included" in line and "numba / reference" in line
    m = res.metrics()
    assert set(m["headline"]) == {"throughput", "speedup_vs_reference",
                                  "parallel_efficiency", "gpu"}
    assert m["headline"]["speedup_vs_reference"].endswith("x (one start bar, up_to=6)")
    assert m["warm_up_seconds"] == 0.25
    assert m["numba_tuples_per_second"] == cmp.loc["numba", "tuples_per_s"]
    path = res.write_metrics(wall_seconds=1.5)          # output_dir from the run's params
    assert path == tmp_path / "out" / "metrics.json"
    doc = metrics.read_metrics("out", tmp_path)
    assert doc["workload"] == "waves" and doc["wall_seconds"] == 1.5
    assert doc["params"]["impl"] == "numba" and doc["headline"] == m["headline"]
    assert "<b>waves</b>: scan: " in res._repr_html_()


def test_result_digest_and_write_patterns(frames, tmp_path):
    a = waves.run(frames, up_to=6)
    b = waves.run(frames, up_to=6, n_jobs=2, backend="threads")
    assert a.digest() == b.digest() and a.digest().startswith(f"{len(a.patterns):,} rows, ")
    out = a.write_patterns(tmp_path / "p.parquet")
    assert len(pd.read_parquet(out)) == len(a.patterns)


# --------------------------------------------------------------------------- anatomy
def test_scan_is_run():   # the facade itself: tests/test_imports.py
    assert waves.scan is waves.run


def test_batched_top_k_across_batch_boundaries_equals_numba(frames):
    """The array engine keeps each batch's top-k per window on the device; with batches of
    7 start bars a window's jobs span several batches, and the top-k of the batches' top-k
    is still the window's top-k (the numba scan's rows)."""
    kw = dict(window=80, overlap=0.5, max_start_points=20, up_to=6, rules="compat,diagonal",
              directions="up,down", top_k=2)
    base = waves.run(frames, impl="numba", **kw)
    got = waves.run(frames, impl="numpy", gpu_batch_jobs=7, **kw)
    assert len(base.patterns) > 0
    pd.testing.assert_frame_equal(got.patterns, base.patterns)
    pd.testing.assert_frame_equal(got.rejects, base.rejects)
