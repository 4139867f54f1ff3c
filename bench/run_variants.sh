#!/usr/bin/env bash
# Tuning: GPU tests on the default library, the quick scan benchmark for each variant in
# build/variants, then the full benchmark (with mamba_ssm) for the fastest variant.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
MAMBA_BUILD=/tmp/mamba_build
if ls .third_party/mamba_ssm-*.tar.gz >/dev/null 2>&1; then
  (MAX_JOBS=16 python3 bench/build_mamba_ssm.py .third_party/mamba_ssm-*.tar.gz $MAMBA_BUILD > "$OUT/mamba_build.log" 2>&1 &)
fi
best=""; best_t=1e30
for lib in build/variants/*.so; do
  echo "== $lib"
  VIM_DEPLOY_KERNELS_LIB=$lib python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider -k "b128 or fused or chunking" 2>&1 | tail -1
  VIM_DEPLOY_KERNELS_LIB=$lib python3 bench/bench_scan.py --quick --out /tmp 2>&1 | grep -E "^\| (tiny|small|base)"
  t=$(python3 -c "import json; r=json.load(open('/tmp/bench_scan.json'))['rows'][0]; print(r['ours_fused_us'])")
  if python3 -c "import sys; sys.exit(0 if $t < $best_t else 1)"; then best=$lib; best_t=$t; fi
done
echo "fastest: $best ($best_t us for small b128)"
. bench/baseline_builds.sh
for i in $(seq 1 60); do importable "$MAMBA_BUILD" selective_scan_cuda && break; sleep 5; done
export PYTHONPATH=$MAMBA_BUILD:$PYTHONPATH
VIM_DEPLOY_KERNELS_LIB=$best python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -2
VIM_DEPLOY_KERNELS_LIB=$best python3 bench/bench_scan.py --out "$OUT" 2>&1 | tail -18
echo "$best" > "$OUT/best_variant.txt"
