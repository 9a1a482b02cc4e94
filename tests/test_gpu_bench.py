"""The device run's synth, waves and marketsim sections (``qbt_lib.bench.gpu``; synth's cases
shared with ``qbt_lib.synth.bench.gpu_cases``) run end to end against a NumPy stand-in for
CuPy, in a fresh interpreter: the Python plumbing of code that otherwise only runs on a GPU lease (case
names, the CPU comparison, the ratios, the same-answers checks, the headline). The stand-in's
figures are not GPU figures; the real ones come from ``benchmarks/gpu/device-run.sh``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "fixtures" / "cupy_standin"

SCRIPT = """
import sys
import numpy as np
import qbt_lib.synth.gpu as sgpu
# device memory is host memory: plain copies for the pinned transfers, and the gather+scale
# through its array-generic code (the stand-in runs no custom kernel)
copy = lambda a, *args, **kwargs: np.array(a, copy=True)
sgpu.to_device = sgpu.to_host = copy
generic = sgpu.gather_scale_device
sgpu.gather_scale_device = lambda ds, key, out=None, use_kernel=True: generic(
    ds, key, out, use_kernel=False)
import qbt_lib.waves.gpu as wgpu
wgpu.is_cupy = lambda xp: False  # the pointer walks by their array twins, not CUDA kernels
from qbt_lib.bench import gpu
sys.exit(gpu.main(sys.argv[1:]))
"""


def test_device_run_sections_run_with_a_cupy_stand_in(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(STANDIN), str(ROOT)]),
               QBT_PROGRESS="0")
    r = subprocess.run([sys.executable, "-c", SCRIPT, "--tag", "standin", "--size", "tiny",
                        "--only", "synth,waves,marketsim", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads((tmp_path / "synth-standin.json").read_text())
    assert d["machine"]["gpu"] == "CuPy stand-in (NumPy)"
    names = [c["name"] for c in d["cases"]]
    gpu_cases = [c for c in d["cases"] if c["device"] == "gpu"]
    assert [c["name"] for c in gpu_cases] == [
        "cupy gather+scale kernel, 65,536 samples (device memory)",
        "cupy array-generic gather+scale (device)",
        "cupy: CPU draws + pinned upload + device gather+scale",
        "pinned-staged host->device copy (256 MiB)",
        "pinned-staged device->host copy (256 MiB)",
        "loader: normalized -> device batches (pinned)"]
    assert "loader: normalized -> host batches" in names
    assert [x["ok"] for x in d["notes"]["same_answers"]] == [True, True]
    ratios = [x["name"] for x in d["ratios"] if x.get("kind") != "efficiency"]
    assert [x["name"] for x in d["ratios"] if x.get("kind") == "efficiency"] == [
        "numba gather+scale, 65,536 samples: 2 workers vs 1"]
    assert "gpu" not in d["notes"]       # "not measured" is noted only where no GPU is
    assert len(ratios) == 2
    assert ratios[0].startswith("gather+scale, GPU vs 2 CPU threads (same 65,536 samples")
    assert ratios[1].startswith("loader: device batches vs host batches (same 65,536")
    assert d["headline"]["gpu"].startswith("{:,.0f}M samples/s gather+scale on CuPy "
                                           "stand-in".format(
                                               d["headline"]["gpu_samples_per_s"] / 1e6))
    for w in ("waves", "marketsim"):
        d = json.loads((tmp_path / f"{w}-standin.json").read_text())
        gpu_cases = [c["name"] for c in d["cases"] if c["device"] == "gpu"]
        assert len(gpu_cases) == 1 and gpu_cases[0].endswith(", GPU"), gpu_cases
        assert [x["ok"] for x in d["notes"]["same_answers"]] == [True]
        vs_cpu = [x for x in d["ratios"] if x["num"] == gpu_cases[0]]
        assert len(vs_cpu) == 1 and "GPU vs 2 CPU threads" in vs_cpu[0]["name"]
        assert " on CuPy stand-in (NumPy) vs " in d["headline"]["gpu"]
