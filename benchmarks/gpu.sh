#!/usr/bin/env bash
# The prepared GPU check of the benchmarks, as one command that fits one short device call (about 8 minutes at most):
#   1. the engine's tests on CuPy            (LINNET_BACKENDS=cupy pytest, not slow; 150 s cap)
#   2. W2 at B = 65536 and W1 at depth 8      (python -m benchmarks --backend cupy; 120 s + 90 s caps)
#   3. W3 and W4 on CuPy                      (90 s cap)
#   4. the theorem checks on CuPy             (python -m proofs_check --backend cupy --scale quick; 120 s cap)
# Each part writes its log (and JSON) under $OUT (default ./bench-out); a part that fails or times out does not
# stop the next one, and the exit status says whether all passed. Run from the repository root:
#   OUT=/some/dir bash benchmarks/gpu.sh            (PARTS="bench" bash benchmarks/gpu.sh for the benchmarks only)
# Needs a visible CuPy device and linnet's dependencies. Where a package is missing (array-api-compat is not in
# the usual GPU images), bring it as wheels in .whl/ beside this repository's root, e.g. fetched elsewhere with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl array-api-compat
# and this script installs them into a private folder first. linnet itself runs from the checkout (PYTHONPATH).
set -u
OUT="${OUT:-bench-out}"
PARTS="${PARTS:-tests bench proofs}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/linnet-site \
        .whl/*.whl > "$OUT/wheels.txt" 2>&1 || { cat "$OUT/wheels.txt"; exit 1; }
    export PYTHONPATH="/tmp/linnet-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg CI=true
"$PY" -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('devices:', n); sys.exit(0 if n else 1)" \
    || { echo "no CuPy device visible; nothing run" | tee "$OUT/gpu_unavailable.txt"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia_smi.csv" 2>&1 || true
rc=0
part() { [[ " $PARTS " == *" $1 "* ]]; }
if part tests; then
    LINNET_BACKENDS=cupy timeout 150 "$PY" -m pytest -q -m "not slow" -x -p no:cacheprovider \
        tests/test_calculus.py tests/test_step.py tests/test_train.py tests/test_product.py tests/test_losses.py \
        tests/test_init.py tests/test_backend.py > "$OUT/gpu_tests.txt" 2>&1 || rc=1
    tail -3 "$OUT/gpu_tests.txt"
fi
if part bench; then
    timeout 120 "$PY" -m benchmarks --backend cupy -k W2 --w2-batch 65536 --json "$OUT/gpu_w2_b65536.json" \
        > "$OUT/gpu_w2.txt" 2>&1 || rc=1
    timeout 90 "$PY" -m benchmarks --backend cupy -k W1 --w1-depths 8 --json "$OUT/gpu_w1_depth8.json" \
        > "$OUT/gpu_w1.txt" 2>&1 || rc=1
    timeout 90 "$PY" -m benchmarks --backend cupy -k W3,W4 --json "$OUT/gpu_w3_w4.json" \
        > "$OUT/gpu_w3_w4.txt" 2>&1 || rc=1
    cat "$OUT"/gpu_w*.txt
fi
if part proofs; then
    timeout 120 "$PY" -m proofs_check --backend cupy --scale quick --json "$OUT/gpu_proofs.json" \
        > "$OUT/gpu_proofs.txt" 2>&1 || rc=1
    tail -20 "$OUT/gpu_proofs.txt"
fi
exit $rc
