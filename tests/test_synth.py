"""synth: implementations agree bitwise; datasets do not depend on n_jobs, backend or chunk
size; bad parameters name themselves; a failed run leaves nothing; the loader round-trips."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qbt_lib import data, synth
from qbt_lib.synth import dataset as dsm
from qbt_lib.synth import space as spm

L, H = 16, 2


@pytest.fixture(scope="module")
def space():
    return synth.sample_space("synthetic", 3, seed=0, lookback=L, horizon=H, n_bars=300)


@pytest.fixture(scope="module")
def cfg():
    return synth.draw_config(7)


def _equal_sets(a, b):
    assert a.columns.keys() == b.columns.keys()
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    np.testing.assert_array_equal(a.materialized(), b.materialized())


def _file_hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ implementations
def test_all_impls_bitwise_equal(space, cfg):
    ref = synth.generate(3000, space, cfg=cfg, impl="reference", chunk_size=1000)
    for impl, kw in [("numpy", {}), ("numba", {}),                     # prange kernel
                     ("numba", {"backend": "threads", "n_jobs": 2, "chunk_size": 700})]:
        _equal_sets(ref, synth.generate(3000, space, cfg=cfg, impl=impl, **kw))


def test_serial_kernel_and_windows_table_equal_reference(space, cfg):
    draws = spm.Draws(cfg, space.n_keys).take(100, 1300)
    want = synth.build_samples("reference", space, draws)
    for impl in ("numpy", "numba"):
        got = synth.build_samples(impl, space, draws)
        for k in want[0]:
            np.testing.assert_array_equal(want[0][k], got[0][k], err_msg=f"{impl} {k}")
        np.testing.assert_array_equal(want[1], got[1])
    keys = {"key": np.arange(space.n_keys)}  # the windows table path: keys only
    a, b = synth.build_samples("reference", space, keys), synth.build_samples("numba", space, keys)
    np.testing.assert_array_equal(a[1], b[1])
    assert "equity" not in b[0]


def test_cupy_impl_falls_back_to_the_same_array_code_without_gpu(monkeypatch):
    from qbt_lib import device
    monkeypatch.setattr(device, "gpu_status", lambda: (False, "test: no GPU"))
    assert synth.resolve_impl("cupy", "auto") == ("numpy", "cpu")
    assert synth.resolve_impl("auto", "auto") == ("numba", "cpu")


@pytest.mark.gpu
def test_cupy_equals_numba(space, cfg):
    from qbt_lib.synth import gpu
    a = synth.generate(5000, space, cfg=cfg, impl="numba")
    b = synth.generate(5000, space, cfg=cfg, impl="cupy", device="gpu", chunk_size=2048)
    _equal_sets(a, b)
    ds = gpu.device_space(space)
    import cupy as cp
    key = gpu.to_device((np.arange(5000) % space.n_keys).astype(np.int64))
    k = gpu.to_host(gpu.gather_scale_device(ds, key))
    g = gpu.to_host(gpu.gather_scale_device(ds, key, use_kernel=False))
    np.testing.assert_array_equal(k, g)
    assert isinstance(key, cp.ndarray)
    cols, ohlcv = gpu.materialize_device(space, cfg, 0, 5000)
    assert isinstance(ohlcv, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(ohlcv), a.ohlcv)
    np.testing.assert_array_equal(cp.asnumpy(cols["forward_return"]), a.columns["forward_return"])


# ------------------------------------------------------------------ what a sample is
def test_samples_match_the_definition(space, cfg):
    frames = synth.market("synthetic", 3, seed=0, n_bars=300)
    s = synth.generate(4000, space, cfg=cfg, impl="numba")
    df = s.samples()
    assert df["idx"].min() == L and df["idx"].max() == 300 - H  # both ends are drawn
    assert set(df["action"].unique()) == {0, 1, 2}
    assert df["equity"].between(1e4, 1e6).all() and df["position"].between(-1, 1).all()
    ohlcv = s.materialized()
    np.testing.assert_array_equal(ohlcv[3, :, -1], 1.0)  # last close / last close
    for i in (0, 1, 2, 1234, 3999):
        f = frames[df["symbol"].iloc[i]]
        idx = int(df["idx"].iloc[i])
        w = f.iloc[idx - L:idx]
        last = w["close"].iloc[-1]
        np.testing.assert_allclose(ohlcv[:4, i].T, w[["open", "high", "low", "close"]] / last,
                                   rtol=1e-6)
        np.testing.assert_allclose(ohlcv[4, i], w["volume"] / w["volume"].mean(), rtol=1e-6)
        assert df["date"].iloc[i] == f.index[idx]
        assert df["forward_return"].iloc[i] == pytest.approx(
            np.log(f["close"].iloc[idx - 1 + H] / last), rel=1e-12)


def test_draws_do_not_depend_on_n_or_chunking(space, cfg):
    whole = synth.generate(3000, space, cfg=cfg, impl="numpy")
    part = synth.generate(700, space, cfg=cfg, impl="numpy", start=1100, chunk_size=300)
    for k in whole.columns:
        np.testing.assert_array_equal(whole.columns[k][1100:1800], part.columns[k])
    other_seed = synth.generate(100, space, cfg=synth.draw_config(8), impl="numpy")
    assert not np.array_equal(whole.columns["equity"][:100], other_seed.columns["equity"])


def test_normalized_in_memory_gathers_the_same_rows(space, cfg):
    mat = synth.generate(2000, space, cfg=cfg, impl="numba")
    norm = synth.generate(2000, space, cfg=cfg, impl="numba", materialize=False)
    assert norm.windows.shape[:2] == (len(np.unique(norm.window_keys)), 5)
    assert len(norm.window_keys) < 2000
    np.testing.assert_array_equal(norm.materialized(), mat.ohlcv)


def test_synthetic_market_is_deterministic_and_valid():
    a = synth.market("synthetic", 3, seed=4, n_bars=400)
    b = synth.market("synthetic", ["SYM000", "SYM001", "SYM002"], seed=4, n_bars=400)
    assert list(a) == list(b)
    for s in a:
        pd.testing.assert_frame_equal(a[s], b[s])
        data.validate_ohlcv(a[s], s)
    assert not a["SYM000"]["close"].equals(synth.market("synthetic", 1, seed=5,
                                                        n_bars=400)["SYM000"]["close"])


def test_source_from_a_csv_path(tmp_path):
    frames = synth.market("synthetic", 2, seed=1, n_bars=120)
    long = pd.concat([f.assign(ticker=s) for s, f in frames.items()]).reset_index()
    p = tmp_path / "prices.csv"
    long.to_csv(p, index=False)
    got = synth.market(str(p), ["SYM001"])
    assert list(got) == ["SYM001"]
    np.testing.assert_allclose(got["SYM001"]["close"], frames["SYM001"]["close"])
    res = synth.run(n=500, source=str(p), symbols=2, lookback=8, n_jobs=1,
                    backend="sequential", chunk_size=200, output_dir=str(tmp_path / "o"))
    assert res.write.n == 500 and res.space.symbols == ["SYM000", "SYM001"]


# ------------------------------------------------------------------ datasets on disk
def _write(path, space, cfg, **kw):
    kw = {"impl": "numba", "chunk_size": 1500, "progress": False, **kw}
    return synth.write_dataset(path, 5000, space, cfg, **kw)


def test_datasets_identical_across_n_jobs_and_backends(space, cfg, tmp_path, dask_address):
    runs = [("sequential", 1, None), ("threads", 2, None), ("loky", 2, None),
            ("dask", 2, dask_address)]
    hashes = []
    for backend, jobs, sched in runs:
        p = tmp_path / f"{backend}-{jobs}"
        _write(p, space, cfg, n_jobs=jobs, backend=backend, scheduler=sched)
        hashes.append(_file_hashes(p))
    assert len(hashes[0]) == 1 + 4 + 1  # meta + 4 sample parts + 1 windows part
    for h in hashes[1:]:
        assert h == hashes[0]


@pytest.mark.parametrize("materialize,fmt", [(False, "parquet"), (True, "ipc")])
def test_datasets_identical_across_chunk_sizes(space, cfg, tmp_path, materialize, fmt):
    digests = {cs: synth.dataset_digest(_write(
        tmp_path / f"c{cs}", space, cfg, chunk_size=cs, materialize=materialize, fmt=fmt,
        n_jobs=2, backend="threads").path) for cs in (1000, 3000, 1 << 16)}
    assert len(set(digests.values())) == 1
    files = {cs: len(list((tmp_path / f"c{cs}").rglob("part-*"))) for cs in digests}
    assert files[1000] > files[3000] > files[1 << 16]


def test_impls_write_identical_files(space, cfg, tmp_path):
    a = _file_hashes(_write(tmp_path / "a", space, cfg, impl="reference").path)
    b = _file_hashes(_write(tmp_path / "b", space, cfg, impl="numpy").path)
    c = _file_hashes(_write(tmp_path / "c", space, cfg, impl="numba").path)
    assert a == b == c


def test_failed_run_leaves_no_dataset(space, cfg, tmp_path, monkeypatch):
    real = dsm._write_part_task
    calls = []

    def failing(task, space=None):
        calls.append(task.part)
        if task.part == 2:
            raise RuntimeError("disk full (simulated)")
        return real(task, space)

    out = tmp_path / "out"
    monkeypatch.setattr(dsm, "_write_part_task", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        _write(out / "dataset", space, cfg, chunk_size=1000)
    assert calls == [0, 1, 2]          # it failed midway, with parts already written
    assert list(out.iterdir()) == []   # ... and nothing is left: no dataset, no temp dir
    monkeypatch.setattr(dsm, "_write_part_task", real)
    _write(out / "dataset", space, cfg)
    before = _file_hashes(out / "dataset")
    monkeypatch.setattr(dsm, "_write_part_task", failing)
    with pytest.raises(RuntimeError):
        _write(out / "dataset", space, cfg, chunk_size=1000, materialize=True)
    assert _file_hashes(out / "dataset") == before  # the previous dataset is kept intact
    assert [p.name for p in out.iterdir()] == ["dataset"]


@pytest.mark.parametrize("fmt", ["parquet", "ipc"])
def test_loader_round_trip(space, cfg, tmp_path, fmt):
    norm = synth.open_dataset(_write(tmp_path / "n", space, cfg, fmt=fmt).path)
    mat = synth.open_dataset(_write(tmp_path / "m", space, cfg, fmt=fmt, materialize=True,
                                    chunk_size=1700).path)
    assert norm.kind == "normalized" and mat.kind == "materialized"
    ln, lm = norm.loader(batch_size=777), mat.loader(batch_size=777)
    assert len(ln) == len(lm) == 7
    got_n, got_m = list(ln), list(lm)
    assert [len(b) for b in got_n] == [777] * 6 + [5000 - 6 * 777]
    for a, b in zip(got_n, got_m):
        np.testing.assert_array_equal(a.ohlcv, b.ohlcv)
        for k in a.columns:
            np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    mem = synth.generate(5000, space, cfg=cfg, impl="numba")
    np.testing.assert_array_equal(np.concatenate([b.ohlcv for b in got_m], axis=1), mem.ohlcv)
    assert len(list(norm.loader(batch_size=777, drop_last=True))) == 6
    for a, b in zip(norm.loader(batch_size=1000, reuse_buffers=True), mat.loader(1000)):
        np.testing.assert_array_equal(a.ohlcv, b.ohlcv)  # buffers reused: compare at once
    samples = norm.read_table().to_pandas()
    assert len(samples) == 5000 and list(samples.columns) == list(synth.SAMPLE_COLUMNS)


@pytest.mark.gpu
def test_loader_on_device(space, cfg, tmp_path):
    import cupy as cp
    ds = synth.open_dataset(_write(tmp_path / "n", space, cfg).path)
    for a, b in zip(ds.loader(batch_size=999), ds.loader(batch_size=999, device="gpu")):
        assert isinstance(b.ohlcv, cp.ndarray)
        np.testing.assert_array_equal(a.ohlcv, cp.asnumpy(b.ohlcv))
        np.testing.assert_array_equal(a.columns["idx"], cp.asnumpy(b.columns["idx"]))


# ------------------------------------------------------------------ parameters
def test_n_accepts_papermill_floats():
    assert synth.check_params(n=1e7)["n"] == 10_000_000
    assert synth.check_params(n="1e7")["n"] == 10_000_000
    assert synth.check_params(n=1e10)["n"] == 10**10


BAD = [("n", 0), ("n", -5), ("n", 1.5), ("n", 2e10), ("n", "many"), ("lookback", 0),
       ("lookback", 2.5), ("horizon", 0), ("seed", -1), ("source", "no/such/file.csv"),
       ("source", 3), ("symbols", 0), ("symbols", []), ("symbols", ["A", "A"]),
       ("n_jobs", 0), ("n_jobs", 1.5), ("backend", "mpi"), ("device", "tpu"),
       ("impl", "fortran"), ("materialize", "maybe"), ("chunk_size", 0),
       ("output_dir", ""), ("file_format", "csv")]


@pytest.mark.parametrize("name,value", BAD)
def test_bad_parameter_is_named(name, value, tmp_path):
    kw = {"output_dir": str(tmp_path), name: value}
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        synth.run(**kw)
    assert not (tmp_path / "dataset").exists()


@pytest.mark.parametrize("kw,name", [
    ({"impl": "cupy", "device": "cpu"}, "impl"), ({"impl": "numba", "device": "gpu"}, "device"),
    ({"lookback": 400, "symbols": 2}, "lookback"), ({"symbols": ["X", "Y"], "source": "sp500"},
                                                    "symbols"),
    ({"symbols": 3, "source": "sp500"}, "symbols"), ({"typo": 1}, "typo")])
def test_inconsistent_parameters_are_named(kw, name, tmp_path):
    if kw.get("source") == "sp500":
        pytest.importorskip("arch")
    with pytest.raises(ValueError, match=name):
        synth.run(output_dir=str(tmp_path), n=100, **kw, **({"n_bars": 300} if "lookback" in kw
                                                            else {}))


# ------------------------------------------------------------------ the notebook's run
def test_run_summary_and_metrics(tmp_path):
    res = synth.run(n=3000, symbols=2, lookback=L, horizon=H, seed=3, n_jobs=1,
                    backend="sequential", chunk_size=1024, output_dir=str(tmp_path),
                    n_bars=300)
    assert res.path == tmp_path / "dataset" and res.write.n == 3000
    assert int(res.write.key_counts.sum()) == 3000 == int(res.write.action_counts.sum())
    assert int(res.write.equity_hist.sum()) == 3000 == int(res.label_histogram()[0].sum())
    summ = res.summary()
    assert summ.loc["samples", "value"] == "3,000"
    ds = res.dataset()
    assert ds.n == 3000 and ds.meta["n_windows"] == res.write.n_windows
    assert res.write.file_bytes / 3000 < 41 + 5 * L * 4  # samples + windows < materialized
    ba = synth.before_after(res, reference_n=200)
    # the references of both layouts (this run is normalized), in memory, this run
    assert list(ba["impl"]) == ["reference", "reference", "numba", "numba"]
    assert (ba["samples_per_s"] > 0).all() and ba["speedup"].iloc[0] == 1.0
    # like with like: each row against the reference building the same layout
    assert ba["against"].iloc[-1] == ba.index[1] and "normalized" in ba.index[1]
    assert ba["speedup"].iloc[1] == 1.0 and ba["against"].iloc[2] == ba.index[0]
    assert res.before_after is ba                       # kept on the result ...
    head = res.headline()                               # ... for its headline
    assert "normalized on both sides" in head["speedup_vs_reference"]
    assert set(head) >= {"throughput", "speedup_vs_reference", "parallel_efficiency", "gpu",
                         "wall_seconds"}
    m = res.metrics()
    assert m["samples_per_s"] > 0 and m["impl"] == "numba"
    assert m["headline"] == head and len(m["before_after"]) == len(ba)


def test_default_chunk_size_is_larger_on_dask():
    assert synth.check_params(backend="threads")["chunk_size"] == synth.CHUNK == 1 << 19
    assert synth.check_params(backend="dask")["chunk_size"] == synth.DASK_CHUNK == 1 << 21
    assert synth.check_params(backend="dask", chunk_size=1000.0)["chunk_size"] == 1000


# ------------------------------------------------------------------ the anatomy (#11)
SYNTH = Path(synth.__file__).parent


def test_every_parameter_is_declared_and_unknown_names_are_refused():
    from qbt_lib.synth import params as P
    assert set(P.CONSTRAINTS) == set(P.DEFAULTS)
    assert synth.check_params is P.check_params
    with pytest.raises(ValueError, match=r"unknown parameter for synth: 'lookbak'.*lookback"):
        synth.check_params(lookbak=32)
    p = synth.check_params(n=2.5e6, lookback=32.0, seed="7", n_jobs=2.0, chunk_size=4096.0)
    assert (p["n"], p["lookback"], p["seed"], p["n_jobs"], p["chunk_size"]) == (
        2_500_000, 32, 7, 2, 4096)
    assert all(type(p[k]) is int for k in ("n", "lookback", "seed", "n_jobs", "chunk_size"))
    assert synth.check_params(impl="NumBa", materialize="true")["impl"] == "numba"
    with pytest.raises(ValueError, match=r"\bchunk_size\b"):
        synth.check_params(chunk_size=2.5)


def test_dispatch_table_engines_give_the_same_answers(space, cfg):
    draws = spm.Draws(cfg, space.n_keys).take(0, 900)
    want = synth.ENGINES["reference"](space, draws)
    assert set(synth.ENGINES) == {"reference", "numpy", "numba", "cupy"}
    for impl in ("numpy", "numba"):
        out = np.full((5, 1000, L), np.nan, np.float32)   # a larger reused buffer: filled
        cols, ohlcv = synth.ENGINES[impl](space, draws, True, out)
        assert np.shares_memory(ohlcv, out)
        np.testing.assert_array_equal(ohlcv, want[1], err_msg=impl)
        for k in want[0]:
            np.testing.assert_array_equal(cols[k], want[0][k], err_msg=f"{impl} {k}")
    with pytest.raises(ValueError, match="impl"):
        synth.build_samples("auto", space, draws)       # the engines take resolved names


def test_dispatch_resolves_through_the_device_layer(monkeypatch):
    from qbt_lib import device
    from qbt_lib.synth import params as P
    monkeypatch.setattr(device, "gpu_status", lambda: (True, "Fake GPU"))
    assert synth.resolve_impl("auto", "auto") == ("cupy", "gpu")      # AUTO_GPU
    assert synth.resolve_impl("numpy", "auto") == ("numpy", "cpu")
    monkeypatch.setattr(P, "AUTO_GPU", False)
    assert synth.resolve_impl("auto", "auto") == ("numba", "cpu")
    assert synth.resolve_impl("cupy", "auto") == ("cupy", "gpu")
    with pytest.raises(ValueError, match=r"impl must be one of .*'numba'.*got 'fortran'"):
        synth.resolve_impl("fortran")
    with pytest.raises(ValueError, match="device='gpu'"):
        synth.resolve_impl("reference", "gpu")


def test_compare_impls_times_the_same_samples(space, cfg):
    t = synth.compare_impls(space, cfg, n=1500, impls=["reference", "numpy", "numba"],
                            repeats=1, warmup=0)
    assert list(t.index) == ["reference", "numpy", "numba"]
    assert t["same_answers"].all() and (t["throughput"] > 0).all()
    assert t.loc["reference", "speedup"] == 1.0 and t["unit"].iloc[0] == "samples/s"
    t = synth.compare_impls(space, cfg, n=800, impls=["numba"], n_jobs=[1, 2], windows=False,
                            repeats=1, warmup=0)
    assert list(t.index) == ["numba, n_jobs=1", "numba, n_jobs=2"] and t["same_answers"].all()


def test_result_headline_and_metrics(tmp_path):
    import json

    from qbt_lib.metrics import Result
    res = synth.run(n=2000, symbols=2, lookback=L, horizon=H, n_jobs=1, backend="sequential",
                    chunk_size=1024, output_dir=str(tmp_path), n_bars=300, impl="numpy")
    assert isinstance(res, Result) and res.workload == "synth"
    assert res.frame().equals(res.summary())
    head = res.headline()                       # before any before/after table
    assert head["speedup_vs_reference"].startswith("n/a") and head["gpu"] == "none (CPU run)"
    assert "before_after" not in res.metrics()
    synth.before_after(res, reference_n=100, fast_n=500)
    assert res.headline()["speedup_vs_reference"].endswith("one core both sides)")
    p = res.write_metrics()
    m = json.loads(p.read_text())
    assert p == tmp_path / "metrics.json" and m["workload"] == "synth"
    assert m["params"]["impl"] == "numpy" and m["headline"]["throughput"].endswith("n=2,000)")
    assert [r["path"] for r in m["before_after"]] == list(res.before_after.index)
    assert "throughput" in res._repr_html_()


def test_store_builds_on_gpu_not_the_other_way():
    """``store`` imports ``gpu`` and ``engines``; ``gpu`` does not import ``store`` (it gets
    the dataset duck-typed). No import cycle anywhere: tests/test_imports.py."""
    import ast
    mods = {f.stem for f in SYNTH.glob("*.py")} - {"__init__"}

    def imports(m: str) -> set[str]:   # the synth modules ``m`` imports (``from . ...``)
        deps = set()
        for node in ast.walk(ast.parse((SYNTH / f"{m}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= ({node.module.split(".")[0]} if node.module else
                         {a.name for a in node.names})
        return deps & mods
    assert imports("store") >= {"gpu", "engines"} and "store" not in imports("gpu")
