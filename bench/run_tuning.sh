#!/usr/bin/env bash
# Kernel tuning in one device call: the GPU tests on the first library, then the quick scan
# benchmark for every library given (fastest first is not assumed), then an Nsight Compute profile
# of each when NCU=1. Libraries are built here (nvcc, sm_90) and carried.
#   bash bench/run_tuning.sh build/v5/v5.so build/prof/v4.so
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ -z "${SKIP_TESTS:-}" ]; then
  VIM_DEPLOY_KERNELS_LIB=$1 timeout 400 python3 -m pytest -q -x -m gpu tests/gpu -p no:cacheprovider ${TEST_ARGS:-} 2>&1 | tail -15 | tee "$OUT/gpu_tests_$(basename "$1" .so).log"
fi
if [ -n "${MEMCHECK:-}" ]; then
  VIM_DEPLOY_KERNELS_LIB=$1 compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_scan.py 2>&1 | tail -4
  echo "memcheck exit: ${PIPESTATUS[0]}"
fi
for lib in "$@"; do
  name=$(basename "$(dirname "$lib")")_$(basename "$lib" .so)  # variants share a file name: keep their folder
  echo "== $name"
  VIM_DEPLOY_KERNELS_LIB=$lib python3 bench/bench_scan.py ${BENCH_ARGS:---quick} --out /tmp 2>&1 | grep -E "^\| (tiny|small|base)"
  cp /tmp/bench_scan.json "$OUT/bench_$name.json"
done
if [ -n "${NCU:-}" ]; then bash bench/profile_scan.sh "$@"; fi
