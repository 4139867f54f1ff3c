#!/usr/bin/env bash
# Issue 11: the warp-specialised scan kernel (VIM_SCAN_WS) against the shipped one, in one device call.
#   tools/build_kernel_variants.sh base "" ws16 "-DVIM_SCAN_WS=1" ws16s3 "-DVIM_SCAN_WS=1 -DVIM_SCAN_WS_STAGES=3"
#   (GPU) VARIANTS="base ws16 ws16s3" bash bench/run_ws_check.sh        (carry those build/variants/<name>)
# 1. the GPU scan tests with the kernel forced wherever it can run (VIM_SCAN_WS_FORCE);
# 2. the same bits as the shipped kernel (bench/scan_lib_outputs.py);
# 3. same-run timing in the fast path's layout, balanced order (bench/run_ab.sh).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
V=build/variants
VARIANTS=${VARIANTS:-base ws16}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
for v in $VARIANTS; do
  [ "$v" = base ] && continue
  echo "## $v: GPU scan tests, forced"
  VIM_SCAN_WS_FORCE=1 VIM_DEPLOY_KERNELS_LIB=$V/$v/libvim_kernels.so timeout ${TEST_TIMEOUT:-150} \
    python3 -m pytest -q -m gpu tests/gpu/test_scan_kernel_gpu.py -x -p no:cacheprovider 2>&1 | tail -4 | tee "$OUT/tests_$v.log"
done
for v in $VARIANTS; do
  VIM_DEPLOY_KERNELS_LIB=$V/$v/libvim_kernels.so python3 bench/scan_lib_outputs.py dump /tmp/o_$v.pt || echo "dump $v failed"
done
for v in $VARIANTS; do
  [ "$v" = base ] && continue
  echo "## base vs $v"; python3 bench/scan_lib_outputs.py compare /tmp/o_base.pt /tmp/o_$v.pt | tee "$OUT/bits_$v.txt"
done
libs=(); for v in $VARIANTS; do libs+=("$V/$v/libvim_kernels.so"); done
ROUNDS=${ROUNDS:-2} BENCH_ARGS=${BENCH_ARGS:---layout fastpath --shapes tiny:128:197,small:128:197,base:128:197} \
  bash bench/run_ab.sh "${libs[@]}"
