#!/usr/bin/env bash
# The numerics of issue [6] on a CUDA device (the torch code; the compiled loops are for CPU
# tensors): the soak at 1e9 draws and the accuracy table against 50-digit mpmath. Run on the
# device machine from the repository root; records go to $OUT (or ./gpu-records).
set -u
OUT="${OUT:-gpu-records}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
timeout 150 python3 scripts/distribution_accuracy.py --device cuda --json "$OUT/accuracy_distributions_cuda.json" \
    2>&1 | tee "$OUT/accuracy_cuda.log"
timeout 330 python3 benchmarks/soak.py --draws 1e9 --device cuda --json "$OUT/soak_cuda.json" 2>&1 \
    | tee "$OUT/soak_cuda.log" | grep -v "^m = "
tail -3 "$OUT/soak_cuda.log"
