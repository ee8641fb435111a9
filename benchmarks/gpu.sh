#!/usr/bin/env bash
# One short prepared GPU run (CuPy, float64): W2 at B = 65536 and W1 at depth 8, then W3 and W4 at the issue's
# sizes, each writing JSON under $OUT (default ./bench-out). Run from the repository root on a machine with CuPy:
#   OUT=/some/dir bash benchmarks/gpu.sh
# Needs: cupy importable and a visible device (python -c "import cupy; cupy.cuda.runtime.getDeviceCount()").
set -u
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
python -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('devices:', n); sys.exit(0 if n else 1)" \
  || { echo "no CuPy device visible; nothing run" | tee "$OUT/gpu_unavailable.txt"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia_smi.csv" 2>&1 || true
rc=0
timeout 240 python -m benchmarks --backend cupy -k W2 --w2-batch 65536 --json "$OUT/gpu_w2_b65536.json" \
  > "$OUT/gpu_w2.txt" 2>&1 || rc=1
timeout 180 python -m benchmarks --backend cupy -k W1 --w1-depths 8 --json "$OUT/gpu_w1_depth8.json" \
  > "$OUT/gpu_w1.txt" 2>&1 || rc=1
timeout 120 python -m benchmarks --backend cupy -k W3,W4 --json "$OUT/gpu_w3_w4.json" \
  > "$OUT/gpu_w3_w4.txt" 2>&1 || rc=1
cat "$OUT"/gpu_*.txt
exit $rc
