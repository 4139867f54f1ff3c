#!/usr/bin/env bash
# Tuning: GPU tests on the default library, then the quick scan benchmark for each variant in build/variants.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
MAMBA_BUILD=/tmp/mamba_build
if [ -f .third_party/selective_scan_cuda.so ]; then mkdir -p $MAMBA_BUILD && cp .third_party/selective_scan_cuda.so $MAMBA_BUILD/; 
elif ls .third_party/mamba_ssm-*.tar.gz >/dev/null 2>&1; then
  (MAX_JOBS=16 python3 bench/build_mamba_ssm.py .third_party/mamba_ssm-*.tar.gz $MAMBA_BUILD > "$OUT/mamba_build.log" 2>&1 &)
fi
python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -4
for lib in build/variants/*.so; do
  echo "== $lib"
  VIM_DEPLOY_KERNELS_LIB=$lib python3 bench/bench_scan.py --quick --out /tmp 2>&1 | grep -E "^\| (tiny|small|base)"
done
for i in $(seq 1 60); do python3 -c "import sys; sys.path.insert(0,'$MAMBA_BUILD'); import selective_scan_cuda" 2>/dev/null && break; sleep 5; done
export PYTHONPATH=$MAMBA_BUILD:$PYTHONPATH
python3 bench/bench_scan.py --out "$OUT" 2>&1 | tail -18
