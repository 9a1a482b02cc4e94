#!/bin/sh
# The GPU machine's device run (issue #17), from the repository root:
#   OUT=/some/folder sh benchmarks/gpu/device-run.sh [TAG]
# 1. the GPU tests and every test that compares a GPU path with the CPU (synth, straddles,
#    waves, marketsim); 2. python -m qbt_lib.bench.gpu: each GPU path against this machine's
#    CPU cores on the same work, answers compared, and the CPU scaling curves. Wheels the
#    machine's image lacks (pandas at our pin, arch) travel in .whl/ (see docs/gpu.md).
TAG=${1:-h200}
OUT=${OUT:-outputs/device}
mkdir -p "$OUT/bench"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" QBT_PROGRESS=0 PYTHONUNBUFFERED=1
{
  nvidia-smi
  nproc; free -g
  python3 -c "import sys, numpy, numba, pandas, pyarrow, scipy, sklearn, cupy; print(sys.version); [print(m.__name__, m.__version__) for m in (numpy, numba, pandas, pyarrow, scipy, sklearn, cupy)]; print('cuda runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion())"
  python3 -c "from qbt_lib.device import gpu_status; print('gpu_status', gpu_status())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
T0=$(date +%s)
timeout ${TEST_TIMEOUT:-210} python3 -m pytest -p no:cacheprovider -q -ra \
  tests/test_synth.py tests/test_straddles.py tests/test_waves.py tests/test_marketsim.py \
  -k "gpu or cupy or device or dispatch or engine" > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$? in $(( $(date +%s) - T0 )) s"; tail -25 "$OUT/pytest.txt"
T0=$(date +%s)
timeout ${BENCH_TIMEOUT:-330} python3 -m qbt_lib.bench.gpu --tag "$TAG" --out "$OUT/bench" \
  ${ONLY:+--only $ONLY} > "$OUT/bench.txt" 2>&1
echo "bench rc=$? in $(( $(date +%s) - T0 )) s"; grep -E "^  |DIFFERENT|Error|error|failed|ratio|wrote" "$OUT/bench.txt" | tail -80
