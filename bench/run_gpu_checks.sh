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
python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -25 | tee "$OUT/gpu_tests.log"
compute-sanitizer --tool memcheck --error-exitcode 9 python3 - <<'PY' 2>&1 | tail -5 | tee "$OUT/memcheck.log"
import torch
from vim_deploy.ops import kernels
for (b, e, l, n, ch) in [(2, 130, 77, 16, 0), (1, 64, 300, 16, 5), (2, 40, 50, 64, 0)]:
    mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)
    d = (mk(b, e, l), mk(b, e, l), -torch.rand(e, n, device="cuda"), mk(b, n, l), mk(b, n, l),
         torch.rand(e, device="cuda"), mk(b, e, l), torch.rand(e, device="cuda"))
    kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5, num_chunks=ch)
torch.cuda.synchronize(); print("memcheck run done")
PY
echo "memcheck exit: ${PIPESTATUS[0]}" | tee -a "$OUT/memcheck.log"
for i in $(seq 1 60); do python3 -c "import sys; sys.path.insert(0,'$MAMBA_BUILD'); import selective_scan_cuda" 2>/dev/null && break; sleep 5; done
tail -2 "$OUT/mamba_build.log"
export PYTHONPATH=$MAMBA_BUILD:$PYTHONPATH
cp $MAMBA_BUILD/selective_scan_cuda.so "$OUT/" 2>/dev/null || true
[ -d .third_party/Vim ] && [ -z "${SKIP_PARITY:-}" ] && python3 tools/official_parity.py .third_party/Vim --out "$OUT" 2>&1 | grep -v Warning | tail -8
python3 bench/bench_scan.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tail -25
if [ -n "${NCU:-}" ]; then
  cuobjdump -sass build/libvim_kernels.so 2>/dev/null | awk '/Function : .*selectiveScanKernelI6__halfLi16ELi1ELb1/{p=1} p&&/Function : /&&!/Li16ELi1ELb1/{p=0} p' > "$OUT/sass_half16.txt"
  ncu --section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy --section ComputeWorkloadAnalysis \
      -k regex:selectiveScanKernel -c 1 python3 - <<'PY' 2>&1 | grep -v "^==PROF==" | tail -120 > "$OUT/ncu.txt"
import torch
from vim_deploy.ops import kernels
b, e, l, n = 128, 768, 197, 16
mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)
d = (mk(b, e, l), mk(b, e, l) - 1, -torch.rand(e, n, device="cuda"), mk(b, n, l), mk(b, n, l),
     torch.rand(e, device="cuda"), mk(b, e, l), torch.rand(e, device="cuda"))
kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5)
torch.cuda.synchronize()
PY
  grep -E "Duration|Throughput|Issue Slots|Warp Cycles Per Issued|Achieved Occupancy|Executed Ipc|Stall|Registers" "$OUT/ncu.txt" | head -40
fi
