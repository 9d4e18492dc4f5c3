#!/usr/bin/env bash
# The GPU checks of issue [8], in one run of under 8 minutes on a machine with a CUDA device, torch,
# torch_geometric, scipy, pytest and ninja (the device tool's machine): the test suite on CUDA, the
# synchronisation and CUDA-graph checks, and the GPU benchmarks. Records go to $OUT (default
# gpu-records/); commit them as benchmarks/results/*_cuda.json.
#
#   SVAE_DATA_DIR=<data> OUT=<folder> bash scripts/gpu_check.sh
#
# The PyPI power-spherical package is installed from a wheel carried in wheels/ when it is missing.
set -u
OUT="${OUT:-gpu-records}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import power_spherical" 2>/dev/null || python3 -m pip install --no-index --find-links wheels power-spherical >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
status=0
step() {  # name, timeout in seconds, command...: run it, keep its log, remember a failure
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1 || { echo "   FAILED ($?): see $OUT/$name.log"; status=1; }
  tail -n 3 "$OUT/$name.log"
}
step tests 240 python3 -m pytest -q -x -p no:cacheprovider tests/test_special.py tests/test_vmf_sampling.py \
  tests/test_kl_and_gradients.py tests/test_distribution_contract.py tests/test_numerics_guarantees.py tests/test_toolchain.py
step cuda_graph_step 60 python3 scripts/cuda_graph_step.py --json "$OUT/cuda_graph_step_cuda.json"
step sampling 60 python3 benchmarks/sampling.py --device cuda --repeats 10 --json "$OUT/sampling_cuda.json"
step train_step 60 python3 benchmarks/train_step.py --device cuda --compile --repeats 100 --json "$OUT/train_step_cuda.json"
step linkpred 40 python3 benchmarks/linkpred.py --device cuda --datasets pubmed --losses negative --json "$OUT/linkpred_cuda.json"
step mnist_epoch 40 python3 -m svae.cli mnist --latent vmf --dim 10 --profile paper --epochs 1 --device cuda \
  --json "$OUT/mnist_paper_epoch_cuda.json"
exit $status
