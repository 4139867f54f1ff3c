#!/usr/bin/env bash
# Per-instruction Nsight Compute profile of the scan kernel: executed instructions and warp-stall samples
# for every SASS instruction (ncu's source page), so that a region of the kernel (token loop, tile copies,
# B/C staging, y store) can be charged with its share of the time. One CSV per case under $OUT, read by
# tools/ncu_source_regions.py on the CPU machine.
#   bash bench/profile_scan_source.sh [lib]        # cases: CASES="small_b128 small_b128_l2 tiny_b8_6085"
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-}
lib=${1:-build/libvim_kernels.so}
for case in ${CASES:-small_b128 small_b128_l2 tiny_b8_6085}; do
  for pass in ${PASSES:-1}; do
    rep=/tmp/rep_${case}_p$pass
    VIM_DEPLOY_KERNELS_LIB=$lib CASE=$case ncu --section SourceCounters --section WarpStateStats \
        --section SchedulerStats --section InstructionStats --section SpeedOfLight --import-source no --kernel-name-base mangled \
        -k "regex:selectiveScanKernel.*Lb${pass}EE" -c 1 -f -o "$rep" python3 - <<'PY' > "$OUT/ncu_log_${case}_p$pass.txt" 2>&1
import os
import torch
from vim_deploy.ops import kernels
case = os.environ["CASE"]
b, e, l, lanes = {"small_b128": (128, 768, 197, 0), "small_b128_l2": (128, 768, 197, 2),
                  "tiny_b8_6085": (8, 384, 6085, 0)}[case]
n = 16
mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)
d = (mk(b, e, l), mk(b, e, l) - 1, -torch.rand(e, n, device="cuda"), mk(b, n, l), mk(b, n, l),
     torch.rand(e, device="cuda"), mk(b, e, l), torch.rand(e, device="cuda"))
kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5, lanes=lanes)
torch.cuda.synchronize()
PY
    ncu -i "$rep.ncu-rep" --page source --csv --print-source sass 2>&1 | gzip > "$OUT/src_${case}_p$pass.csv.gz"
    ncu -i "$rep.ncu-rep" --page details 2>&1 | grep -E "Duration|Issue Slots Busy|Executed Instructions  |Warp Cycles Per Issued|Registers|Theoretical Occ" | head -12
    echo "== $case pass $pass: $(zcat "$OUT/src_${case}_p$pass.csv.gz" | wc -l) source rows"
  done
done
