#!/usr/bin/env bash
# The end-to-end tables on a CUDA machine, in three runs on the same machine (the builds of the baselines
# started by the first are used by the next):
#   bash bench/run_e2e.sh a   GPU tests, memcheck, our fast path + DeiT sweeps; starts the builds of
#                             mamba_ssm's and causal-conv1d's kernels in the background (setsid)
#   bash bench/run_e2e.sh b   waits for those builds; scan benchmark vs mamba_ssm (SKIP_SCAN=1: not);
#                             hustvl/Vim's own code (official-fp16) beside our fast path at batch 128 and 1 @ 224
#   bash bench/run_e2e.sh c   the same two over the paper's resolutions at batch 8
# Needs build/libvim_kernels.so (sm_90) and .third_party/{mamba_ssm-*.tar.gz, causal_conv1d-*.tar.gz,
# Vim/} carried (never committed). Outputs (at most 8 files) under $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; W=/tmp/e2e; mkdir -p $W
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
B="python3 -m vim_deploy bench -q"
. bench/baseline_builds.sh
case "${1:-a}" in
a)
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
  start_baseline_builds
  python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -3 | tee "$OUT/gpu_tests.log"
  compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_scan.py 2>&1 | tail -3 | tee "$OUT/memcheck.log"
  $B -m vim_tiny --backends fastpath-fp16,deit_tiny-math-fp16,deit_tiny-sdpa-fp16,deit_tiny-sdpa-fp16-graph --batch 8 --resolutions paper \
     --warmup 2 --iters 10 --out-dir $W/sweep_b8
  for m in tiny small base; do
    $B -m vim_$m --backends pytorch-fp16,fastpath-fp16,deit_$m-sdpa-fp16,deit_$m-sdpa-fp16-graph,deit_$m-math-fp16 --batch 128 --resolutions 224 \
       --warmup 1 --iters 5 --out-dir $W/b128_vim_$m
  done
  python3 bench/profile_memory.py --model vim_tiny --batch 8 --res 1248 --out "$OUT" | head -1
  python3 bench/merge_bench.py "$OUT/e2e_a" $W/sweep_b8 $W/b128_vim_tiny $W/b128_vim_small $W/b128_vim_base > /dev/null
  cp $W/sweep_b8/bench.png "$OUT/sweep_b8.png"
  grep -h "^|" "$OUT/e2e_a.md" | grep -v "^|--"
  tail -qn1 /tmp/build_*.log
  ;;
b)
  wait_baseline_builds 90
  [ -n "${SKIP_SCAN:-}" ] || python3 bench/bench_scan.py --out "$OUT" 2>&1 | grep -E "^#|^\|"
  official_tables
  python3 bench/merge_bench.py "$OUT/e2e_b" $W/off_b128_vim_tiny $W/off_b128_vim_small $W/off_b128_vim_base $W/off_b1 \
     > /dev/null
  grep -h "^|" "$OUT/e2e_b.md" | grep -v "^|--"
  ;;
c)  # the resolution sweep of the official code beside ours (a and b together run past one call's 10 minutes)
  wait_baseline_builds 1  # built in call a or b: on PYTHONPATH
  $B -m vim_tiny --backends official-fp16,fastpath-fp16 --upstream .third_party/Vim --batch 8 --resolutions paper \
     --warmup 2 --iters 10 --out-dir $W/off_sweep_b8
  python3 bench/merge_bench.py "$OUT/e2e_c" $W/off_sweep_b8 > /dev/null
  cp $W/off_sweep_b8/bench.png "$OUT/sweep_b8_official.png"
  grep -h "^|" "$OUT/e2e_c.md" | grep -v "^|--"
  ;;
esac
