#!/usr/bin/env bash
# Issue 11's end-to-end figures in ONE device call (about 8 minutes), on the library carried in build/:
#   1. starts the builds of mamba_ssm's and causal-conv1d's kernels in the background (hustvl/Vim's code needs
#      both; causal-conv1d takes ~6 minutes on 12 jobs);
#   2. meanwhile, vim_tiny at batch 8 @ 224 and 1248 px: our fast path against DeiT-T with flash attention,
#      eager and CUDA-graphed (throughput, latency, peak memory);
#   3. then hustvl/Vim's own code (official-fp16) beside our fast path at batch 128 @ 224 (T/S/B) and batch 1.
# Every table is one `vim-deploy bench` run: ratios come from rows measured side by side. img/s is the
# back-to-back throughput, p50/p90/p99 the latency of single runs (vim_deploy/bench/runner.py).
# $WHILE_BUILDING, if set, is a command run on the idle GPU after step 2, while the builds finish.
#   bash bench/run_e2e_official.sh        (carry build/libvim_kernels.so and .third_party)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; W=/tmp/e2e; mkdir -p $W
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
B="python3 -m vim_deploy bench -q"
. bench/baseline_builds.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
start_baseline_builds
$B -m vim_tiny --backends fastpath-fp16,deit_tiny-sdpa-fp16,deit_tiny-sdpa-fp16-graph --batch 8 --resolutions 224,1248 \
   --warmup 3 --iters 20 --out-dir $W/deit_b8
if [ -n "${WHILE_BUILDING:-}" ]; then echo "## while the baselines build: $WHILE_BUILDING"; eval "$WHILE_BUILDING"; fi
wait_baseline_builds 100
official_tables
python3 bench/merge_bench.py "$OUT/e2e_official" $W/deit_b8 $W/off_b128_vim_tiny $W/off_b128_vim_small \
   $W/off_b128_vim_base $W/off_b1 > /dev/null
grep -h "^|" "$OUT/e2e_official.md" | grep -v "^|--"
