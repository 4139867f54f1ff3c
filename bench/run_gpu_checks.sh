#!/usr/bin/env bash
# GPU checks in one run: the GPU tests (-m gpu), compute-sanitizer memcheck of the scan launches, and, when
# their inputs are carried, parity with hustvl/Vim's code and the scan benchmark against mamba_ssm.
# Expects build/libvim_kernels.so (built for the GPU, e.g. `vim-deploy plugin build --cuda-archs 90-real`)
# and, for the baselines, .third_party/{mamba_ssm-*.tar.gz, Vim/} (carried; never committed).
# SKIP_SCAN=1 leaves the scan benchmark out.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
MAMBA_BUILD=/tmp/mamba_build
MAMBA_SRC=$(ls .third_party/mamba_ssm-*.tar.gz 2>/dev/null | head -1)
if [ -n "$MAMBA_SRC" ]; then
  (MAX_JOBS=16 python3 bench/build_mamba_ssm.py "$MAMBA_SRC" $MAMBA_BUILD > "$OUT/mamba_build.log" 2>&1 &)
fi
python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -25 | tee "$OUT/gpu_tests.log"
compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_scan.py 2>&1 | tail -5 | tee "$OUT/memcheck.log"
echo "memcheck exit: ${PIPESTATUS[0]}" | tee -a "$OUT/memcheck.log"
if [ -n "$MAMBA_SRC" ]; then
  . bench/baseline_builds.sh
  for i in $(seq 1 60); do importable "$MAMBA_BUILD" selective_scan_cuda && break; sleep 5; done
  tail -2 "$OUT/mamba_build.log"
  export PYTHONPATH=$MAMBA_BUILD:$PYTHONPATH
fi
[ -d .third_party/Vim ] && [ -z "${SKIP_PARITY:-}" ] && python3 tools/official_parity.py .third_party/Vim --out "$OUT" 2>&1 | grep -v Warning | tail -8
[ -z "${SKIP_SCAN:-}" ] && python3 bench/bench_scan.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tail -25
exit 0
