#!/usr/bin/env bash
# One device call: GPU tests, compute-sanitizer, upstream parity and the scan benchmark.
# Expects build/libvim_kernels.so (built for sm_90 on the dev machine and carried) and, for the
# baselines, .third_party/{mamba_ssm-*.tar.gz, Vim/} (carried; never committed).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
MAMBA_BUILD=/tmp/mamba_build
if ls .third_party/mamba_ssm-*.tar.gz >/dev/null 2>&1; then
  (MAX_JOBS=16 python3 bench/build_mamba_ssm.py .third_party/mamba_ssm-*.tar.gz $MAMBA_BUILD > "$OUT/mamba_build.log" 2>&1 &)
fi
python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -25 | tee "$OUT/gpu_tests.log"
compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_scan.py 2>&1 | tail -5 | tee "$OUT/memcheck.log"
echo "memcheck exit: ${PIPESTATUS[0]}" | tee -a "$OUT/memcheck.log"
. bench/baseline_builds.sh
for i in $(seq 1 60); do importable "$MAMBA_BUILD" selective_scan_cuda && break; sleep 5; done
tail -2 "$OUT/mamba_build.log"
export PYTHONPATH=$MAMBA_BUILD:$PYTHONPATH
cp $MAMBA_BUILD/selective_scan_cuda.so "$OUT/" 2>/dev/null || true
[ -d .third_party/Vim ] && [ -z "${SKIP_PARITY:-}" ] && python3 tools/official_parity.py .third_party/Vim --out "$OUT" 2>&1 | grep -v Warning | tail -8
python3 bench/bench_scan.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tail -25
