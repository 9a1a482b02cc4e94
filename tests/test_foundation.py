"""The shared layers: parameters, data contract and loaders, synthetic market, price store,
parallel map determinism, device fallback, bench harness."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest

from qbt_lib import data, device, parallel, params
from qbt_lib.bench import Bench, load_results


# ------------------------------------------------------------------ params
@pytest.mark.parametrize("value,expected", [(10, 10), (1e7, 10_000_000), ("1e7", 10_000_000),
                                            (np.int64(5), 5), (np.float64(3.0), 3), ("12", 12)])
def test_as_int_accepts_integral(value, expected):
    assert params.as_int("n", value, min=1) == expected


@pytest.mark.parametrize("value", [1.5, "abc", True, float("nan"), float("inf"), None, [1]])
def test_as_int_rejects_non_integral(value):
    with pytest.raises(ValueError, match="^n must be an integer"):
        params.as_int("n", value)


def test_as_int_bounds_name_the_parameter():
    with pytest.raises(ValueError, match="n must be >= 1"):
        params.as_int("n", 0, min=1)
    with pytest.raises(ValueError, match="n must be <= 10,000,000,000"):
        params.as_int("n", 2e10, max=10**10)


def test_one_of_and_lists():
    assert params.one_of("impl", "NumPy", ["reference", "numpy"]) == "numpy"
    with pytest.raises(ValueError, match="impl must be one of"):
        params.one_of("impl", "fortran", ["reference", "numpy"])
    assert params.as_list("s", "a, b") == ["a", "b"]
    with pytest.raises(ValueError, match="s must not be empty"):
        params.as_list("s", [])


# ------------------------------------------------------------------ data contract
def _frame(n=5):
    idx = pd.bdate_range("2020-01-01", periods=n, name="date")
    return pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
                         "volume": 100.0}, index=idx)


def test_validate_accepts_good_frame():
    data.validate_ohlcv(_frame())


@pytest.mark.parametrize("col,val,rule", [
    ("close", np.nan, "close is NaN or inf"), ("open", np.inf, "open is NaN or inf"),
    ("low", -1.0, "price <= 0"), ("high", 10.0, r"high < max\(open, close\)"),
    ("low", 10.2, r"low > min\(open, close\)"), ("volume", -5.0, "volume < 0")])
def test_validate_names_row_and_rule(col, val, rule):
    df = _frame()
    df.iloc[3, df.columns.get_loc(col)] = val
    with pytest.raises(ValueError, match=rf"SPX: row 3 \(2020-01-06\): {rule}"):
        data.validate_ohlcv(df, name="SPX")


def test_validate_dates():
    df = _frame()
    df.index = df.index[[0, 1, 1, 3, 4]]
    with pytest.raises(ValueError, match="row 2 .*duplicate date"):
        data.validate_ohlcv(df)
    df = _frame()
    df.index = df.index[[0, 2, 1, 3, 4]]
    with pytest.raises(ValueError, match="row 2 .*dates not increasing"):
        data.validate_ohlcv(df)


def test_validate_first_bad_row_wins():
    df = _frame()
    df.iloc[4, 0] = np.nan
    df.iloc[2, 4] = -1.0
    with pytest.raises(ValueError, match="row 2 .*volume < 0"):
        data.validate_ohlcv(df)


def test_validate_missing_column_and_dtype():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['volume'\]"):
        data.validate_ohlcv(_frame().drop(columns="volume"))
    with pytest.raises(ValueError, match="'volume' must be float64"):
        data.validate_ohlcv(_frame().astype({"volume": "int64"}))


def test_load_csv_yahoo_headers(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                 "2020-01-02,10,11,9,10.5,10.4,100\n2020-01-03,10.5,12,10,11,10.9,200\n")
    df = data.load_ohlcv(p)
    assert list(df.columns) == list(data.OHLCV)
    assert df.index[1] == pd.Timestamp("2020-01-03") and df["volume"].dtype == np.float64
    df.to_parquet(tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(data.load_ohlcv(tmp_path / "x.parquet"), df,
                                  check_freq=False)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a known source .* nor an existing file"):
        data.load_ohlcv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        data.load_ohlcv(tmp_path / "empty.csv")
    (tmp_path / "hdr.csv").write_text("date,open,high,low,close,volume\n")
    with pytest.raises(ValueError, match="header but no rows"):
        data.load_ohlcv(tmp_path / "hdr.csv")
    (tmp_path / "cols.csv").write_text("date,open,close\n2020-01-02,1,2\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['high', 'low', 'volume'\]"):
        data.load_ohlcv(tmp_path / "cols.csv")
    (tmp_path / "bad.csv").write_text("date,open,high,low,close,volume\n"
                                      "2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,0.9,0.5,1.5,10\n")
    with pytest.raises(ValueError, match=r"row 1 \(2020-01-03\): high < max"):
        data.load_ohlcv(tmp_path / "bad.csv")


def test_load_universe_long_table(tmp_path):
    m = data.synthetic_market(["A", "B"], 30, seed=3)
    long = pd.concat([f.assign(ticker=s) for s, f in m.items()]).reset_index()
    long.to_csv(tmp_path / "u.csv", index=False)
    u = data.load_universe(tmp_path / "u.csv")
    assert list(u) == ["A", "B"]
    np.testing.assert_allclose(u["B"]["close"].to_numpy(), m["B"]["close"].to_numpy())


def test_synthetic_market_deterministic_and_valid():
    a = data.synthetic_market(4, 600, seed=7)
    b = data.synthetic_market(4, 600, seed=7)
    c = data.synthetic_market(2, 600, seed=7)
    for s in a:
        data.validate_ohlcv(a[s], s)
        pd.testing.assert_frame_equal(a[s], b[s])
    for s in c:  # a symbol's path does not depend on how many symbols were asked for
        pd.testing.assert_frame_equal(a[s], c[s])
    assert not a["SYM000"].equals(data.synthetic_market(1, 600, seed=8)["SYM000"])
    long = data.synthetic_market(8, 3000, seed=7)
    rets = [np.log(f["close"]).diff().dropna() for f in long.values()]
    assert np.mean([r.kurt() for r in rets]) > 1.0  # fat tails
    assert np.mean([r.abs().autocorr(1) for r in rets]) > 0.05  # volatility clustering


def test_sample_data_sp500():
    pytest.importorskip("arch")
    df = data.sample_data("sp500")
    assert df.index[0] == pd.Timestamp("1999-01-04") and len(df) > 5000
    assert "vix" in data.sample_data("vix").columns
    with pytest.raises(ValueError, match="sample data name"):
        data.sample_data("nasdaq")


def test_price_store_mmap_and_pickle(tmp_path):
    m = data.synthetic_market(3, 50, seed=1)
    m["SYM001"] = m["SYM001"].iloc[10:]  # a symbol with a shorter history
    ps = data.PriceStore.build(m, root=tmp_path)
    assert isinstance(ps["close"], np.memmap) and ps["close"].shape == (50, 3)
    assert np.isnan(ps["close"][:10, 1]).all()
    pd.testing.assert_frame_equal(ps.frame("SYM001")[list(data.OHLCV)], m["SYM001"],
                                  check_freq=False)
    blob = pickle.dumps(ps)
    assert len(blob) < 500  # the path travels, never the arrays
    ps2 = pickle.loads(blob)
    np.testing.assert_array_equal(ps2["open"], ps["open"])
    assert data.PriceStore.build(m, root=tmp_path).path == ps.path  # content-hash reuse
    assert not list(tmp_path.glob(".*"))  # no temp dirs left
    with pytest.raises(ValueError, match="unknown symbol 'ZZZ'"):
        ps.series("close", "ZZZ")


# ------------------------------------------------------------------ parallel
def _draw(task):
    seed, c, (a, b) = task
    return parallel.chunk_rng(seed, c).standard_normal(b - a)


def test_chunk_rng_equals_spawn():
    kids = np.random.SeedSequence(42).spawn(5)
    for c in range(5):
        assert parallel.chunk_rng(42, c).integers(0, 2**62) == \
            np.random.default_rng(kids[c]).integers(0, 2**62)


def test_resolve_n_jobs():
    cores = parallel.available_cores()
    assert parallel.resolve_n_jobs(-1) == cores
    assert parallel.resolve_n_jobs(-2) == max(1, cores - 1)
    assert parallel.resolve_n_jobs(3) == 3 and parallel.resolve_n_jobs(2.0) == 2
    with pytest.raises(ValueError, match="n_jobs must not be 0"):
        parallel.resolve_n_jobs(0)
    with pytest.raises(ValueError, match="n_jobs must be an integer"):
        parallel.resolve_n_jobs(1.5)
    with pytest.raises(ValueError, match="backend must be one of"):
        parallel.pmap(abs, [1, 2], backend="mpi", n_jobs=2)


def test_pmap_identical_across_backends(dask_address):
    tasks = [(11, c, ab) for c, ab in enumerate(parallel.chunk_bounds(1000, 96))]
    ref = np.concatenate(parallel.pmap(_draw, tasks, backend="sequential"))
    for backend, n in [("threads", 2), ("loky", 2), ("loky", 1), ("threads", -1)]:
        got = np.concatenate(parallel.pmap(_draw, tasks, backend=backend, n_jobs=n))
        np.testing.assert_array_equal(got, ref)
    got = np.concatenate(parallel.pmap(_draw, tasks, backend="dask", n_jobs=2,
                                       scheduler=dask_address))
    np.testing.assert_array_equal(got, ref)


def test_pmap_small_jobs_run_sequentially():
    # no cost threshold (removed: never set above 0); one task or n_jobs=1 stays in-process
    assert not hasattr(parallel, "DEFAULT_MIN_PARALLEL_COST")
    assert parallel.effective_backend("loky", 1, 10) == ("sequential", 1)
    assert parallel.effective_backend("loky", 2, 10) == ("loky", 2)
    assert parallel.effective_backend("loky", 4, 1) == ("sequential", 1)


def _boom(x):
    if x == 3:
        raise KeyError("task 3 failed")
    return x


@pytest.mark.parametrize("backend", ["sequential", "threads", "loky"])
def test_pmap_propagates_errors(backend):
    with pytest.raises(KeyError, match="task 3 failed"):
        parallel.pmap(_boom, range(6), backend=backend, n_jobs=2)


# ------------------------------------------------------------------ device
def test_device_auto_falls_back_with_one_reason(caplog, monkeypatch):
    monkeypatch.setattr(device, "gpu_status", lambda: (False, "no CUDA here (test)"))
    monkeypatch.setattr(device, "_warned", set())
    with caplog.at_level(logging.INFO, logger="qbt"):
        assert device.resolve_device("auto") == "cpu"
        assert device.resolve_device("auto") == "cpu"
    assert sum("no CUDA here (test)" in r.message for r in caplog.records) == 1
    with pytest.raises(RuntimeError, match="device='gpu' was requested.*no CUDA here"):
        device.resolve_device("gpu")
    assert device.resolve_device("cpu") == "cpu"
    assert device.array_module("cpu") is np
    with pytest.raises(ValueError, match="device must be one of"):
        device.resolve_device("tpu")


# ------------------------------------------------------------------ bench harness
def test_bench_records_cases_and_ratios(tmp_path):
    b = Bench("unit", quick=True, out_dir=tmp_path, measure_bandwidth=False)
    slow = b.measure("slow", lambda: sum(range(20000)), impl="reference", size=20000,
                     repeats=2)
    fast = b.measure("fast", lambda: np.arange(20000).sum(), impl="numpy", size=20000,
                     repeats=2, nbytes=160000)
    r = b.ratio("numpy vs reference", fast, slow, target=1.0)
    p = b.finish()
    assert r > 1.0
    (doc,) = load_results(tmp_path)
    assert doc["_path"] == str(p) and doc["machine"]["cores"] >= 1
    assert [c["name"] for c in doc["cases"]] == ["slow", "fast"]
    assert doc["ratios"][0]["ok"] is True and doc["cases"][1]["GBps"] > 0


def test_items_in_free_memory_sizes_gpu_batches_from_a_quarter_of_free_memory():
    import types
    fake = types.SimpleNamespace(__name__="cupy", cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(memGetInfo=lambda: (4000, 8000))))
    assert device.is_cupy(fake) and not device.is_cupy(np)
    assert device.items_in_free_memory(np, 10, default=7) == 7          # not CuPy
    assert device.items_in_free_memory(fake, 10, default=7) == 100      # 4000 / 4 / 10
    assert device.items_in_free_memory(fake, 10, default=7, hi=30) == 30
    assert device.items_in_free_memory(fake, 10_000, default=7, lo=5) == 5
    assert device.items_in_free_memory(fake, 0, default=7) == 1000      # at least 1 byte
