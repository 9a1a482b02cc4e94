"""synth research options (#16): labels by hand and bitwise across implementations, date
splits with an embargo (boundaries by hand, nothing leaks), the training loader (epochs,
shards, DLPack), determinism across n_jobs/chunk sizes, no partial outputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qbt_lib import synth
from qbt_lib.synth import dataset as dsm
from qbt_lib.synth import labels as lb
from qbt_lib.synth import space as spm
from qbt_lib.synth.splits import allocate, split_frames

L, H = 16, 4
SPECS = [lb.label_spec("sign", 0.01), lb.label_spec("sign", 0.0),
         lb.label_spec("triple_barrier", 0, 1.0, 1.0, 10),
         lb.label_spec("triple_barrier", 0, 0.5, 0.0, 15, lookback=L)]


@pytest.fixture(scope="module")
def space():
    return synth.sample_space("synthetic", 3, seed=0, lookback=L, horizon=H, n_bars=300)


def _frame(close):
    close = np.asarray(close, float)
    idx = pd.bdate_range("2020-01-01", periods=len(close))
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": np.ones(len(close))}, index=idx)


# ------------------------------------------------------------------ labels by hand
def test_sign_label_by_hand():
    fr = np.log(np.array([1.02, 1.005, 1.0, 0.995, 0.98]))
    out = np.empty(5, np.int8)
    np.testing.assert_array_equal(lb.sign_label_nb(fr, 0.01, out), [1, 0, 0, 0, -1])
    np.testing.assert_array_equal(lb.classes_xp(np, None, None, fr, 1, lb.label_spec(
        "sign", 0.01)), [1, 0, 0, 0, -1])
    np.testing.assert_array_equal(lb.sign_label_nb(fr, 0.0, out), [1, 1, 0, -1, -1])


def test_triple_barrier_by_hand():
    # vol window 2: returns +1%, -1% -> mean 0, sample std sqrt((1e-4 + 1e-4) / 1) = 1.414%
    base = [100.0, 101.0, 99.99]  # bars 0..2; decision bar 3, entry close[2] = 99.99
    r = [101 / 100 - 1, 99.99 / 101 - 1]
    m = (r[0] + r[1]) / 2
    sigma = np.sqrt(((r[0] - m) ** 2 + (r[1] - m) ** 2) / 1)
    up, dn = 99.99 * (1 + 1.0 * sigma), 99.99 * (1 - 1.0 * sigma)
    cases = {  # path after entry -> label (tp = sl = 1 sigma, horizon 3)
        "tp first": ([99.99 * 1.001, up * 1.0001, dn * 0.99], 1),
        "sl first": ([99.99 * 0.999, dn * 0.9999, up * 1.01], -1),
        "time barrier": ([99.99 * 1.001, 99.99 * 0.999, 99.99], 0),
        "exactly on the barrier counts": ([99.99 * (1 + sigma) * (1 + 1e-15), 99.99, 99.99],
                                          1),
    }
    spec = lb.label_spec("triple_barrier", 0, 1.0, 1.0, 2)
    for name, (path, want) in cases.items():
        close = np.array(base + path)
        bar = np.array([3])
        got = [lb.classes_numba(close, bar, None, 3, spec)[0],
               lb.classes_xp(np, close, bar, None, 3, spec)[0],
               lb.label_one(close, 3, 3, spec)]
        assert got == [want] * 3, name
    # stop_loss 0 disables the lower barrier: the time barrier instead
    close = np.array(base + cases["sl first"][0])
    no_sl = lb.label_spec("triple_barrier", 0, 1.0, 0.0, 2)
    assert lb.classes_numba(close, np.array([3]), None, 3, no_sl)[0] == 1  # up at bar 3
    close = np.array(base + [dn * 0.99, dn * 0.98, dn * 0.97])
    assert lb.label_one(close, 3, 3, no_sl) == 0


def test_flat_window_does_not_touch_on_no_move():
    close = np.array([10.0] * 6)
    spec = lb.label_spec("triple_barrier", 0, 1.0, 1.0, 2)
    assert lb.classes_numba(close, np.array([3]), None, 2, spec)[0] == 0
    assert lb.label_one(close, 3, 2, spec) == 0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: str(s.as_dict()))
def test_label_kernels_bitwise_equal(space, spec):
    want = lb.key_classes(space, spec, "reference")
    for impl in ("numba", "numpy"):
        np.testing.assert_array_equal(lb.key_classes(space, spec, impl), want, err_msg=impl)
    assert set(np.unique(want)) <= {-1, 0, 1}


@pytest.mark.gpu
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: str(s.as_dict()))
def test_label_kernels_on_the_gpu_equal_the_reference(space, spec):
    np.testing.assert_array_equal(lb.key_classes(space, spec, "cupy"),
                                  lb.key_classes(space, spec, "reference"))


@pytest.mark.parametrize("spec", SPECS[::2], ids=lambda s: s.kind)
def test_label_column_same_in_every_impl(space, spec):
    cfg = synth.draw_config(5)
    ref = synth.generate(2000, space, cfg=cfg, impl="reference", label=spec)
    assert ref.columns["label"].dtype == np.int8
    for impl, kw in [("numpy", {}), ("numba", {}),
                     ("numba", {"backend": "threads", "n_jobs": 2, "chunk_size": 333})]:
        got = synth.generate(2000, space, cfg=cfg, impl=impl, label=spec, **kw)
        for k in ref.columns:
            np.testing.assert_array_equal(ref.columns[k], got.columns[k], err_msg=f"{impl} {k}")


def test_label_params_named():
    for kw, name in [({"label": "nope"}, "label"), ({"label_threshold": -1}, "label_threshold"),
                     ({"label": "triple_barrier", "lookback": 8}, "vol_window"),
                     ({"label": "triple_barrier", "take_profit": 0, "stop_loss": 0},
                      "take_profit"), ({"vol_window": 1}, "vol_window")]:
        with pytest.raises(ValueError, match=name):
            synth.check_params(**kw)


def test_label_dataset_identical_across_n_jobs_and_chunks(space, tmp_path):
    cfg, spec = synth.draw_config(2), SPECS[2]
    digests = set()
    for i, (jobs, chunk, mat) in enumerate([(1, 1000, False), (2, 333, False), (2, 4096, False)]):
        synth.write_dataset(tmp_path / f"d{i}", 3000, space, cfg, impl="numba", n_jobs=jobs,
                            backend="threads", chunk_size=chunk, materialize=mat,
                            progress=False, label=spec)
        digests.add(synth.dataset_digest(tmp_path / f"d{i}"))
    assert len(digests) == 1
    ds = synth.open_dataset(tmp_path / "d0")
    assert ds.label == spec.as_dict() and "label" in ds.read_table().column_names


def test_default_dataset_has_no_label_column_or_meta(space, tmp_path):
    synth.write_dataset(tmp_path / "d", 500, space, synth.draw_config(0), progress=False)
    ds = synth.open_dataset(tmp_path / "d")
    assert "label" not in ds.meta and "label" not in ds.read_table().column_names


# ------------------------------------------------------------------ splits
def test_splits_accept_json_yaml_and_dicts():
    want = {"train": ("2000-01-01", "2009-12-31"), "test": ("2010-01-01", None)}
    for v in ('{"test": ["2010-01-01", null], "train": ["2000-01-01", "2009-12-31"]}',
              "train: [2000-01-01, 2009-12-31]\ntest: [2010-01-01, null]",
              {"train": ["2000-01-01", "2009-12-31"], "test": ("2010-01-01", None)}):
        p = synth.check_params(splits=v)
        assert p["splits"] == want and list(p["splits"]) == ["train", "test"]
        assert p["embargo"] == 64 + 1
    assert synth.check_params(splits=v, embargo=0)["embargo"] == 0
    for bad in ("[1, 2", "[1, 2]", '{"a": ["2001-01-01"]}', '{"../x": [null, null]}',
                '{"a": [null, "2005-01-01"], "b": ["2004-01-01", null]}'):
        with pytest.raises(ValueError, match="splits"):
            synth.check_params(splits=bad)


def test_split_boundaries_by_hand():
    f = _frame(np.linspace(10, 20, 40))       # 40 business days from 2020-01-01
    d = f.index
    splits = {"train": (None, str(d[19].date())), "test": (str(d[20].date()), None)}
    parts, table = split_frames({"A": f}, splits, lookback=3, horizon=2, embargo=5)
    tr, te = parts["train"]["A"], parts["test"]["A"]
    assert tr.index[0] == d[0] and tr.index[-1] == d[19]
    # bars 20..24 embargoed: 5 bars between train's last (19) and test's first (25)
    assert te.index[0] == d[25] and te.index[-1] == d[39]
    assert table.set_index("split").loc["test", "embargoed"] == 5
    # a gap already wider than the embargo drops nothing
    parts, _ = split_frames({"A": f}, {"a": (None, str(d[9].date())),
                                       "b": (str(d[30].date()), None)}, 3, 2, 5)
    assert parts["b"]["A"].index[0] == d[30]
    # too few bars left: the split is named
    with pytest.raises(ValueError, match="test"):
        split_frames({"A": f}, {"train": (None, str(d[33].date())),
                                "test": (str(d[34].date()), None)}, 3, 2, 2)


def test_split_samples_never_reach_into_another_split(tmp_path):
    res = synth.run(n=6000, lookback=L, horizon=H, symbols=2, n_jobs=1,
                    backend="sequential", output_dir=tmp_path, progress=False, n_bars=400,
                    label="triple_barrier", vol_window=8,
                    splits={"train": [None, "2000-10-31"], "valid": ["2000-11-01", "2001-02-28"],
                            "test": ["2001-03-01", None]})
    names = {p.name for p in tmp_path.iterdir()}
    assert {"test", "train", "valid"} <= names and ".splits" not in names
    assert sum(r.write.n for r in res.splits.values()) == 6000
    frames = synth.market("synthetic", 2, seed=0, n_bars=400)
    dates = next(iter(frames.values())).index
    spans = {}
    for s, r in res.splits.items():
        t = r.dataset().read_table().to_pandas()
        pos = dates.get_indexer(t["date"])          # decision bar of each sample
        spans[s] = (pos.min() - L, pos.max() - 1 + H)  # first window bar .. last label bar
        a, b = res.params["splits"][s]
        assert a is None or dates[spans[s][0]] >= pd.Timestamp(a)
        assert b is None or dates[spans[s][1]] <= pd.Timestamp(b)
    order = list(res.splits)
    for x, y in zip(order, order[1:]):
        assert spans[y][0] - spans[x][1] > res.params["embargo"]  # footprints + the embargo
    assert res.split_frame()["samples"].sum() == 6000
    assert "splits" in res.metrics()


def test_splits_identical_across_n_jobs_and_chunks(tmp_path):
    kw = dict(n=5000, lookback=L, horizon=H, symbols=2, n_bars=400, progress=False,
              splits='{"train": [null, "2000-12-31"], "test": ["2001-01-01", null]}')
    got = []
    for i, (jobs, chunk) in enumerate([(1, 700), (2, 4096)]):
        r = synth.run(output_dir=tmp_path / str(i), n_jobs=jobs, backend="threads",
                      chunk_size=chunk, **kw)
        got.append({s: synth.dataset_digest(x.path) for s, x in r.splits.items()})
    assert got[0] == got[1]


def test_failed_split_run_leaves_no_split(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = dsm._write_part_task

    def fail_in_second_split(task, space=None):
        calls["n"] += 1
        if "test" in task.dir:
            raise RuntimeError("boom")
        return real(task, space)

    monkeypatch.setattr(dsm, "_write_part_task", fail_in_second_split)
    with pytest.raises(RuntimeError, match="boom"):
        synth.run(n=3000, lookback=L, horizon=H, symbols=2, n_bars=400, n_jobs=1,
                  backend="sequential", output_dir=tmp_path, progress=False,
                  splits={"train": [None, "2000-12-31"], "test": ["2001-01-01", None]})
    assert not [p for p in tmp_path.iterdir() if p.name in ("train", "test", ".splits")]
    assert not list(tmp_path.glob(".*splits*"))


def test_allocate_by_keys():
    assert allocate(10, {"a": 60, "b": 30, "c": 10}) == {"a": 6, "b": 3, "c": 1}
    assert sum(allocate(7, {"a": 1, "b": 1, "c": 1}).values()) == 7
    assert allocate(3, {"a": 1000, "b": 1, "c": 1}) == {"a": 1, "b": 1, "c": 1}


# ------------------------------------------------------------------ the training loader
@pytest.fixture(scope="module")
def written(space, tmp_path_factory):
    root = tmp_path_factory.mktemp("ld")
    cfg = synth.draw_config(4)
    synth.write_dataset(root / "norm", 2500, space, cfg, chunk_size=700, progress=False,
                        label=SPECS[0])
    synth.write_dataset(root / "mat", 2500, space, cfg, chunk_size=900, materialize=True,
                        fmt="ipc", progress=False, label=SPECS[0])
    return synth.open_dataset(root / "norm"), synth.open_dataset(root / "mat")


def test_loader_epochs_permute_and_repeat(written):
    norm, _ = written
    ld = synth.loader(norm, batch_size=300, seed=3)
    e0 = np.concatenate([b["idx"] for b in ld])
    ld.set_epoch(1)
    e1 = np.concatenate([b["idx"] for b in ld])
    assert not np.array_equal(e0, e1)
    again = np.concatenate([b["idx"] for b in synth.loader(norm, batch_size=300, seed=3)])
    np.testing.assert_array_equal(e0, again)
    o0, o1 = ld.order(0), ld.order(1)
    assert sorted(o0.tolist()) == list(range(2500)) == sorted(o1.tolist())
    assert not np.array_equal(o0, o1)
    plain = np.concatenate([b["idx"] for b in synth.loader(norm, 300, shuffle=False)])
    np.testing.assert_array_equal(plain, norm.read_table().column("idx").to_numpy())


@pytest.mark.parametrize("world, drop_last", [(3, False), (3, True), (4, True), (1, False)])
def test_loader_shards_cover_and_do_not_overlap(written, world, drop_last):
    norm, _ = written
    bs = 128
    shards = [synth.loader(norm, bs, seed=1, epoch=2, rank=r, world_size=world,
                           drop_last=drop_last) for r in range(world)]
    got = [s.order() for s in shards]
    flat = np.concatenate(got)
    assert len(np.unique(flat)) == len(flat)
    if drop_last:
        assert len({len(s) for s in shards}) == 1
        assert all(len(b["window"]) == bs for s in shards for b in s)
        assert len(flat) == (2500 // world) // bs * bs * world
    else:
        assert len(flat) == 2500
        assert sum(len(b["idx"]) for s in shards for b in s) == 2500
    assert [len(list(s)) for s in shards] == [len(s) for s in shards]


def test_loader_batches_match_the_samples(written, space):
    norm, mat = written
    cfg = synth.draw_config(4)
    want = synth.generate(2500, space, cfg=cfg, impl="numba", label=SPECS[0])
    ohlcv = want.materialized()
    for ds in (norm, mat):
        ld = synth.loader(ds, batch_size=1000, seed=9)
        order = ld.order()
        seen = 0
        for b in ld:
            idx = order[seen:seen + len(b["window"])]
            seen += len(idx)
            np.testing.assert_array_equal(b["window"], ohlcv[:, idx].transpose(1, 0, 2))
            for k in want.columns:
                np.testing.assert_array_equal(b[k], want.columns[k][idx], err_msg=k)
            assert b["target"] is b["label"]
        assert seen == 2500


def test_loader_arrays_hand_off_through_dlpack(written):
    b = next(iter(synth.loader(written[0], batch_size=64)))
    for k, v in b.items():
        assert v.flags.c_contiguous and v.flags.writeable, k
        got = np.from_dlpack(v)
        assert np.shares_memory(got, v), k
    torch = pytest.importorskip("torch")
    t = torch.from_dlpack(b["window"])
    assert t.data_ptr() == b["window"].ctypes.data


def test_loader_error_reaches_the_caller_and_early_stop_ends_thread(written, monkeypatch):
    import threading
    norm, _ = written
    ld = synth.loader(norm, batch_size=100, prefetch=1)
    it = iter(ld)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "synth-loader"]
    ld2 = synth.loader(norm, batch_size=100)
    real = ld2.batch
    calls = {"n": 0}

    def bad(idx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("bad batch")
        return real(idx)

    monkeypatch.setattr(ld2, "batch", bad)
    with pytest.raises(RuntimeError, match="bad batch"):
        list(ld2)


def test_loader_params_named(written):
    for kw, name in [({"batch_size": 0}, "batch_size"), ({"rank": 3, "world_size": 3}, "rank"),
                     ({"world_size": 0}, "world_size"), ({"epoch": -1}, "epoch")]:
        with pytest.raises(ValueError, match=name):
            synth.loader(written[0], **kw)
