"""The data layer (``qbt_lib.data``) through the public API of all five workloads.

One table of bad inputs and one of equivalent inputs, each run through synth, walkforward,
waves, marketsim and straddles at tiny sizes, plus the layer's own rules (registry, symbol
selection, adjusted prices, implied vol, asset classes).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from qbt_lib import data
from qbt_lib import marketsim as ms
from qbt_lib import straddles as st
from qbt_lib import synth
from qbt_lib import walkforward as wf
from qbt_lib import waves

NAMES = ("AAA", "BBB")
DATES = pd.bdate_range("2017-01-02", "2020-06-30", name="date")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Two symbols of daily OHLCV with a decimal ``vol`` column, 2017-01 .. 2020-06."""
    m = data.synthetic_market(list(NAMES), n_bars=len(DATES), seed=11, start="2017-01-02",
                              with_vol=True)
    return {k: v.round(6) for k, v in m.items()}  # CSV round trips exactly


def _long(frames, column="symbol"):
    return pd.concat([f.assign(**{column: s}) for s, f in frames.items()]).reset_index()


# ------------------------------------------------------------------ the five workloads
def run_synth(source, out, start=None, symbols=None):
    res = synth.run(n=3000, lookback=8, horizon=1, seed=1, source=source, symbols=symbols,
                    start=start, n_jobs=1, backend="sequential", device="cpu", impl="numba",
                    chunk_size=1024, output_dir=out, progress=False)
    return synth.dataset_digest(res.path)


def run_walkforward(source, out, start="2019-01-01", symbols=None):
    res = wf.run(symbols=symbols, source=source, start=start, end="2020-06-30",
                 fold_length=120, step_size=60, test_length=60, n_jobs=1,
                 backend="sequential", output_dir=out, progress=False)
    return res.fold_metrics.reset_index(drop=True)


def run_waves(source, out, start=None, symbols=None):
    res = waves.scan(source, symbols=symbols, start=start, window=120, overlap=0.5,
                     max_start_points=4, up_to=6, directions=["up", "down"], top_k=3,
                     n_jobs=1, backend="sequential", progress=False)
    waves.write_patterns(res.patterns, Path(out) / "patterns.parquet")
    return res.patterns


def run_marketsim(source, out, start=None, symbols=None):
    res = ms.analyze(source, symbols, start=start, simulations=4, eval_days=4, context=40,
                     ar_order=3, num_samples=32, n_jobs=1, backend="sequential",
                     progress=False)
    ms.write_results(res, out)
    return res.table


def run_straddles(source, out, start=None, symbols=None):
    y0 = 2017 if start is None else pd.Timestamp(start).year
    bt = st.run(source=source, assets=symbols, start_year=y0, end_year=2019, per_month=2,
                tenor=10, n_jobs=1, output="parquet", output_path=str(out))
    return bt.summary


WORKLOADS = {"synth": run_synth, "walkforward": run_walkforward, "waves": run_waves,
             "marketsim": run_marketsim, "straddles": run_straddles}
START = {"synth": "2018-01-01", "walkforward": "2019-01-01", "waves": "2018-01-01",
         "marketsim": None, "straddles": "2018-01-01"}  # marketsim reads its last 48 bars


def _same(a, b):
    if isinstance(a, str):
        assert a == b
    else:
        pd.testing.assert_frame_equal(a, b)


def _nothing_left(out: Path) -> None:
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not left, f"partial output left behind: {left[:5]}"


# ------------------------------------------------------------------ bad inputs
def _bad_frames(frames, case):
    """``(what to write, expected)``: expected is "same" (the clean result), "same-start"
    (the clean result with the workload's later start), or an error regex."""
    f = {k: v.copy() for k, v in frames.items()}
    b = f["BBB"]
    late = len(b) - 10                      # inside every workload's used range
    if case == "newest_first":
        return _long({k: v.iloc[::-1] for k, v in f.items()}), "same"
    if case == "shuffled":
        b = b.iloc[np.r_[0:100, 101, 100, 102:len(b)]]
        f["BBB"] = b
        return _long(f), r"BBB: row 101 \(\d{4}-\d\d-\d\d\): dates out of order, row 100 is"
    if case == "duplicate":
        f["BBB"] = pd.concat([b.iloc[:200], b.iloc[199:]])
        return _long(f), r"BBB: row 200 \(\d{4}-\d\d-\d\d\): duplicate date, the same as row 199"
    if case in ("nan", "inf"):
        b.iloc[late, b.columns.get_loc("close")] = np.nan if case == "nan" else np.inf
        return _long(f), rf"BBB: row {late} \(\d{{4}}-\d\d-\d\d\): close is NaN or inf"
    if case == "nan_before_range":
        b.iloc[5, b.columns.get_loc("close")] = np.nan
        return _long(f), "same-start"
    if case == "high_below_low":
        b.iloc[late, b.columns.get_loc("high")] = b["low"].iloc[late] * 0.9
        return _long(f), rf"BBB: row {late} \(\d{{4}}-\d\d-\d\d\): high < max\(open, close\)"
    if case == "missing_close":   # waves reads only high and low
        return _long(f).drop(columns=["close"]), r"missing column\(s\) \['close'\]"
    if case == "missing_high":    # straddles reads only the close
        return _long(f).drop(columns=["high"]), r"missing column\(s\) \['high'\]"
    if case == "non_numeric":
        lg = _long(f).astype({"close": object})
        i = int(np.flatnonzero(lg["symbol"].to_numpy() == "BBB")[late])
        lg.loc[i, "close"] = "1.2.3"
        return lg, rf"BBB: row {late} \(\d{{4}}-\d\d-\d\d\): column 'close' is not a number"
    if case == "percent_vol":
        for v in f.values():
            v["vol"] = v["vol"] * 100
        return _long(f), "percent"
    raise AssertionError(case)


CASES = ["newest_first", "shuffled", "duplicate", "nan", "inf", "nan_before_range",
         "high_below_low", "missing_close", "missing_high", "non_numeric", "percent_vol"]
# where a workload's outcome differs from the table's: it does not read that column
NOT_READ = {("waves", "missing_close"), ("straddles", "missing_high")}


@pytest.fixture(scope="module")
def clean(frames, tmp_path_factory):
    """Each workload's result on the clean CSV, from its default start and a later one."""
    d = tmp_path_factory.mktemp("clean")
    csv = d / "prices.csv"
    _long(frames).to_csv(csv, index=False)
    out = {}
    for name, run in WORKLOADS.items():
        out[name] = run(str(csv), d / f"{name}-out")
        out[name, "start"] = run(str(csv), d / f"{name}-out-start", start=START[name])
    return out


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_bad_inputs_through_every_workload(frames, clean, tmp_path, workload, case, caplog):
    table, expected = _bad_frames(frames, case)
    csv = tmp_path / "prices.csv"
    table.to_csv(csv, index=False)
    out = tmp_path / "out"
    run = WORKLOADS[workload]
    if expected == "percent":
        expected = (r"asset 'AAA': the vol column looks like percent \(median [\d.]+\).*divide "
                    r"the column by 100") if workload == "straddles" else "same"
    if (workload, case) in NOT_READ:
        expected = "same"
    if expected == "same":
        with caplog.at_level(logging.INFO, logger="qbt"):
            _same(run(str(csv), out), clean[workload])
        if case == "newest_first":
            assert "newest-first" in caplog.text and "reversed" in caplog.text
    elif expected == "same-start":
        _same(run(str(csv), out, start=START[workload]), clean[workload, "start"])
        if workload != "marketsim":  # from the data's first bar the NaN is in the used range
            with pytest.raises(ValueError, match=r"BBB: row 5 \(2017-01-09\): close is NaN"):
                run(str(csv), tmp_path / "out2", start="2017-01-02")
            _nothing_left(tmp_path / "out2")
    else:
        with pytest.raises(ValueError, match=expected):
            run(str(csv), out)
        _nothing_left(out)


@pytest.mark.parametrize("content,match", [
    ("", "the file is empty"),
    ("date,open,high,low,close,volume,vol\n", "the file has a header but no rows")])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_empty_and_header_only_files(tmp_path, workload, content, match):
    csv = tmp_path / "AAA.csv"
    csv.write_text(content)
    with pytest.raises(ValueError, match=match):
        WORKLOADS[workload](str(csv), tmp_path / "out")
    _nothing_left(tmp_path / "out")


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_unknown_symbol_lists_what_the_source_has(frames, tmp_path, workload):
    param = "assets" if workload == "straddles" else "symbols"
    with pytest.raises(ValueError, match=rf"{param}: unknown symbol\(s\) \['ZZZ'\]; the dict "
                                         r"of frames has \['AAA', 'BBB'\]"):
        WORKLOADS[workload](frames, tmp_path / "out", symbols=["AAA", "ZZZ"])
    _nothing_left(tmp_path / "out")


# ------------------------------------------------------------------ equivalent inputs
def _forms(frames, d: Path):
    long = _long(frames)
    long.to_csv(d / "long.csv", index=False)
    long.to_parquet(d / "long.parquet", index=False)
    (d / "folder").mkdir()
    frames["AAA"].to_csv(d / "folder" / "AAA.csv")
    frames["BBB"].to_parquet(d / "folder" / "BBB.parquet")
    pads.write_dataset(pa.Table.from_pandas(long, preserve_index=False), d / "hive",
                       format="parquet", partitioning=["symbol"], partitioning_flavor="hive")
    ticker = _long(frames, column="Ticker").rename(columns=str.title)  # vendor headers
    return {"csv": str(d / "long.csv"), "parquet": str(d / "long.parquet"),
            "folder": str(d / "folder"), "hive": str(d / "hive"), "long DataFrame": long,
            "vendor headers": ticker, "dict": dict(frames)}


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_equivalent_inputs_give_identical_results(frames, clean, tmp_path, workload):
    for kind, src in _forms(frames, tmp_path).items():
        got = WORKLOADS[workload](src, tmp_path / f"out-{kind.replace(' ', '-')}")
        try:
            _same(got, clean[workload])
        except AssertionError as e:
            raise AssertionError(f"{workload}: source as {kind} differs") from e


def test_one_symbol_as_file_frame_and_dict_is_the_same(frames, tmp_path):
    one = frames["AAA"]
    one.to_csv(tmp_path / "AAA.csv")
    named = one.copy()
    named.attrs["symbol"] = "AAA"
    for src in (str(tmp_path / "AAA.csv"), named, {"AAA": one}):
        got = data.load(src)
        assert list(got) == ["AAA"]
        pd.testing.assert_frame_equal(got["AAA"], data.load({"AAA": one})["AAA"])
    assert list(data.load(one)) == ["data"]  # an unnamed frame


# ------------------------------------------------------------------ the layer's own rules
def test_symbol_selection_rules(frames):
    long = _long({**frames, "CCC": frames["AAA"]})
    assert list(data.load(long)) == ["AAA", "BBB", "CCC"]
    assert list(data.load(long, "all")) == ["AAA", "BBB", "CCC"]
    assert list(data.load(long, 2)) == ["AAA", "BBB"]
    assert list(data.load(long, 2.0)) == ["AAA", "BBB"]          # papermill's float
    assert list(data.load(long, "CCC, AAA")) == ["CCC", "AAA"]
    for bad, match in [(2.5, "symbols must be an integer"), (0, "symbols must be >= 1"),
                       (4, r"symbols=4 but the DataFrame has only 3 symbol\(s\)"),
                       (["AAA", "AAA"], "duplicates"), (True, "must be a count")]:
        with pytest.raises(ValueError, match=match):
            data.load(long, bad)
    with pytest.raises(ValueError, match=r"assets=0|assets must be >= 1"):
        st.run(assets=0)


def test_start_end_and_warmup_cut_before_validation(frames):
    f = frames["AAA"].copy()
    f.iloc[100, 0] = np.nan
    got = data.load({"AAA": f}, start=f.index[150], end=f.index[300])["AAA"]
    assert got.index[0] == f.index[150] and got.index[-1] == f.index[300]
    assert len(data.load({"AAA": f}, start=f.index[150], warmup=40)["AAA"]) == len(f) - 110
    with pytest.raises(ValueError, match=r"AAA: row 100 .*open is NaN"):
        data.load({"AAA": f}, start=f.index[150], warmup=60)
    assert len(data.load({"AAA": f}, tail=48)["AAA"]) == 48
    with pytest.raises(ValueError, match="no bars in the range"):
        data.load({"AAA": f}, start="2030-01-01")
    with pytest.raises(ValueError, match="end must be a date"):
        data.load({"AAA": f}, end="soon")


def _split_series(frames):
    """AAA with a 2:1 split halfway: raw prices halve, volume doubles; adj_close is the
    close restated in post-split terms (what a vendor's Adjusted Close column holds)."""
    f = frames["AAA"][["open", "high", "low", "close", "volume"]].copy()
    k = len(f) // 2
    raw = f.copy()
    raw.iloc[k:, :4] = raw.iloc[k:, :4] / 2
    raw.iloc[k:, 4] = raw.iloc[k:, 4] * 2
    raw["adj_close"] = f["close"] / 2
    return raw, k


def test_split_adjusted_prices_have_no_jump(frames, tmp_path):
    raw, k = _split_series(frames)
    raw.to_csv(tmp_path / "AAA.csv", index_label="Date")
    src = str(tmp_path / "AAA.csv")
    adj = data.load(src)["AAA"]
    r = np.log(adj["close"]).diff()
    orig = np.log(frames["AAA"]["close"]).diff()
    np.testing.assert_allclose(r.to_numpy()[1:], orig.to_numpy()[1:], atol=1e-12)  # no jump
    np.testing.assert_allclose(adj["close"].to_numpy(), frames["AAA"]["close"].to_numpy() / 2)
    np.testing.assert_allclose(adj["volume"].to_numpy(), frames["AAA"]["volume"].to_numpy() * 2)
    rawp = data.load(src, adjust=False)["AAA"]
    assert np.log(rawp["close"]).diff().iloc[k] < -0.5       # the split as a -50% "return"
    # synth: labels and windows
    for adjust, jump in ((True, False), (False, True)):
        res = synth.run(n=20000, lookback=8, source=src, adjust=adjust, n_jobs=1,
                        backend="sequential", impl="numba", chunk_size=4096, device="cpu",
                        output_dir=tmp_path / f"synth-{adjust}", progress=False)
        s = res.dataset().read_table("samples").to_pandas()
        assert (s["forward_return"].abs() > 0.5).any() == jump
        b = next(iter(res.dataset().loader(batch_size=20000)))
        assert (b.ohlcv[3] > 1.6).any() == jump            # a window spanning the split
    # walkforward: features and labels of the adjusted series
    from qbt_lib.walkforward.reference import features_pandas
    cfg = wf.make_config(source=src, start="2019-01-01", end="2020-06-30", fold_length=120,
                         step_size=60)
    X, y = features_pandas(cfg.frames["AAA"])
    unsplit = frames["AAA"].loc[cfg.frames["AAA"].index, list(data.OHLCV)].copy()
    unsplit.iloc[:, :4] /= 2                                # the same company, never split,
    unsplit["volume"] *= 2                                  # in today's share count
    X0, y0 = features_pandas(unsplit)
    pd.testing.assert_frame_equal(X, X0, rtol=1e-9, atol=1e-12)
    pd.testing.assert_series_equal(y, y0, rtol=1e-9, atol=1e-12)
    cfg_raw = wf.make_config(source=src, start="2019-01-01", end="2020-06-30",
                             fold_length=120, step_size=60, adjust=False)
    assert features_pandas(cfg_raw.frames["AAA"])[1].min() < -0.4


def test_implied_vol_sources(frames, tmp_path):
    store, names = st.load_market(frames, start_year=2018)
    np.testing.assert_array_equal(store.series("vol", "AAA")[np.isfinite(store.series("price", "AAA"))],
                                  frames["AAA"]["vol"].loc["2018":].to_numpy())
    store, _ = st.load_market({"AAA": frames["AAA"].drop(columns="vol")}, vol="realized:20",
                              start_year=2018)
    v = store.series("vol", "AAA")
    close = frames["AAA"]["close"]
    expect = np.log(close).diff().rolling(20).std() * np.sqrt(252)
    got = pd.Series(v, index=store.dates).dropna()
    np.testing.assert_allclose(got.to_numpy(), expect.loc[got.index].to_numpy(), rtol=1e-12)
    assert got.index[0] < pd.Timestamp("2018-01-02")          # the warm-up bars give day one a vol
    # no look-ahead: perturbing later closes leaves earlier vols unchanged
    bumped = frames["AAA"].drop(columns="vol").copy()
    bumped.iloc[600:, :4] *= 1.3
    v2 = st.load_market({"AAA": bumped}, vol="realized:20", start_year=2018)[0].series("vol", "AAA")
    cut = np.flatnonzero(store.dates == bumped.index[600])[0]
    np.testing.assert_array_equal(v2[:cut], v[:cut])
    for bad in ("realized", "realized:1", "vix"):
        with pytest.raises(ValueError, match="vol must be 'column'"):
            st.load_market(frames, vol=bad)
    pytest.importorskip("arch")
    store, names = st.load_market("sp500")
    assert names == ["SP500"] and 0.05 < np.nanmedian(store["vol"]) < 0.4


def test_asset_classes(frames):
    f = {"AAA": frames["AAA"], "BTCUSD": frames["BBB"]}
    assert ms.asset_classes(f) == {"AAA": "equity", "BTCUSD": "crypto"}
    assert ms.asset_classes(f, {"AAA": "crypto", "BTCUSD": "equity"}) == \
        {"AAA": "crypto", "BTCUSD": "equity"}
    tagged = data.load({"AAA": frames["AAA"].assign(asset_class="Crypto")}, keep=("asset_class",))
    assert ms.asset_classes(tagged) == {"AAA": "crypto"}
    kw = dict(simulations=3, eval_days=3, context=40, ar_order=3, num_samples=16,
              progress=False, n_jobs=1, backend="sequential")
    a = ms.analyze({"AAA": frames["AAA"].assign(asset_class="crypto")}, **kw)
    b = ms.analyze({"AAA": frames["AAA"]}, asset_classes={"AAA": "crypto"}, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert bool(a.table["crypto"].all())
    with pytest.raises(ValueError, match=r"asset_classes\['AAA'\] must be one of"):
        ms.analyze({"AAA": frames["AAA"]}, asset_classes={"AAA": "forex"}, **kw)
    with pytest.raises(ValueError, match=r"asset_classes: unknown symbol\(s\) \['ZZZ'\]"):
        ms.analyze({"AAA": frames["AAA"]}, asset_classes={"ZZZ": "crypto"}, **kw)


def test_register_source(frames):
    data.register_source("qbt-test-vendor", lambda: _long(frames), replace=True)
    assert "qbt-test-vendor" in data.registered_sources()
    got = ms.load_source("QBT-test-vendor", ["BBB"])
    assert list(got) == ["BBB"]
    with pytest.raises(ValueError, match="already registered"):
        data.register_source("qbt-test-vendor", lambda: None)
    with pytest.raises(ValueError, match="plain word"):
        data.register_source("a/b.csv", lambda: None)


def test_long_table_split_keeps_first_appearance_and_file_order(frames):
    """Interleaved rows: symbols in order of first appearance (not sorted), each symbol's
    rows in file order."""
    long = _long({"BBB": frames["BBB"], "AAA": frames["AAA"]})
    mixed = long.iloc[np.argsort(np.arange(len(long)) % len(DATES), kind="stable")]
    got = data.load(mixed)
    assert list(got) == ["BBB", "AAA"]
    for s in NAMES:
        pd.testing.assert_frame_equal(got[s], data.load({s: frames[s]})[s])


def test_folder_count_reads_each_file_once(frames, tmp_path, monkeypatch):
    """A count above the folder's symbols is named with how many it has, after one read of
    each file; a count within reads only the files it needs."""
    from qbt_lib.data import sources
    for s, f in frames.items():
        f.to_csv(tmp_path / f"{s}.csv")
    reads = []
    read = sources._read_file
    monkeypatch.setattr(sources, "_read_file", lambda p, shown: reads.append(p.name) or
                        read(p, shown))
    with pytest.raises(ValueError, match=r"symbols=5 but .* has only 2 symbol\(s\)"):
        data.load(str(tmp_path), 5)
    assert sorted(reads) == ["AAA.csv", "BBB.csv"]
    reads.clear()
    assert list(data.load(str(tmp_path), 1)) == ["AAA"] and reads == ["AAA.csv"]


def test_span_then_load_reads_the_files_once(frames, tmp_path, monkeypatch):
    """A run that sets its range from the data (span, then load) parses each file once; a
    file changed in between is read again; the frames equal a load's alone."""
    from qbt_lib.data import sources
    for s, f in frames.items():
        f.to_csv(tmp_path / f"{s}.csv")
    alone = data.load(str(tmp_path), start="2019-01-01")
    reads = []
    read = sources._read_file
    monkeypatch.setattr(sources, "_read_file", lambda p, shown: reads.append(p.name) or
                        read(p, shown))
    spans = data.span(str(tmp_path))
    assert spans["AAA"] == (DATES[0], DATES[-1])
    got = data.load(str(tmp_path), start="2019-01-01")
    assert sorted(reads) == ["AAA.csv", "BBB.csv"]
    for s in alone:
        pd.testing.assert_frame_equal(got[s], alone[s])
    data.load(str(tmp_path))                                   # taken: a load reads again
    assert len(reads) == 4
    data.span(str(tmp_path), ["AAA"])
    frames["AAA"].iloc[:-1].to_csv(tmp_path / "AAA.csv")      # changed since the span
    assert data.load(str(tmp_path), ["AAA"])["AAA"].index[-1] == DATES[-2]
    assert reads[-2:] == ["AAA.csv", "AAA.csv"]


def test_generating_source_gets_its_selection_normalized():
    """``"all"`` is the default set, ``"3"`` a count, ``"A, B"`` two names: the data layer
    normalizes a generating source's selection once, not each workload's generator."""
    kw = dict(n_bars=40)
    assert list(data.load("synthetic", "all", options=kw)) == \
        list(data.load("synthetic", options=kw)) == data.symbol_names(10)
    assert list(data.load("synthetic", "3", options=kw)) == data.symbol_names(3)
    assert list(data.load("synthetic", 2.0, options=kw)) == data.symbol_names(2)
    assert list(data.load("synthetic", "AAA, BBB", options=kw)) == ["AAA", "BBB"]
    seen = []
    data.register_source("qbt-test-generator", lambda symbols=None: seen.append(symbols) or
                         data.synthetic_market(2 if symbols is None else symbols, n_bars=40),
                         generates=True, replace=True)
    for sel, want in [(None, None), ("all", None), ("", None), ("3", 3), (2.0, 2),
                      ("AAA,BBB", ["AAA", "BBB"])]:
        data.load("qbt-test-generator", sel)
        assert seen[-1] == want, sel
    with pytest.raises(ValueError, match=r"assets must be >= 1"):
        data.load("synthetic", "0", param="assets")


def test_sp500_is_one_symbol_with_one_name_everywhere():
    pytest.importorskip("arch")
    assert list(synth.market("sp500")) == ["SP500"]
    assert list(waves.load_source("sp500")) == ["SP500"]
    assert list(ms.load_source("sp500")) == ["SP500"]
    assert st.load_market("sp500")[1] == ["SP500"]
    assert wf.make_config(source="sp500").assets == ("SP500",)


def test_newest_first_sp500_is_not_a_7000_percent_backtest(tmp_path):
    """The bug that started this: the S&P 500 written newest-first ran backwards in time."""
    pytest.importorskip("arch")
    spx = data.sample_data("sp500")
    spx.iloc[::-1].to_csv(tmp_path / "SPX.csv", index_label="Date")
    kw = dict(start="2012-01-01", end="2018-12-31", n_jobs=1, backend="sequential",
              progress=False)
    rev = wf.run(source=str(tmp_path / "SPX.csv"), **kw)
    asc = wf.run(source="sp500", **kw)
    pd.testing.assert_frame_equal(rev.fold_metrics.drop(columns="asset"),
                                  asc.fold_metrics.drop(columns="asset"))
    assert rev.fold_metrics["total_return"].abs().max() < 1.0
