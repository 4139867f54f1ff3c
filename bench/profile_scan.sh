#!/usr/bin/env bash
# Nsight Compute profile of the scan kernel on vim_small b128 L197 (fused bidirectional, fp16), for
# each library given (default: build/libvim_kernels.so). Writes $OUT/ncu_<name>.txt and prints the
# headline metrics, then the instruction mix of the scan kernels' SASS (cuobjdump; counts only).
# LANES=2 forces two lanes a channel (the launcher picks 1 at batch 128). Needs ncu (the device image has it).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-}
libs=("$@"); [ ${#libs[@]} -eq 0 ] && libs=(build/libvim_kernels.so)
for lib in "${libs[@]}"; do
  name=$(basename "$(dirname "$lib")")_$(basename "$lib" .so)${LANES:+_lanes$LANES}  # variants share a file name
  VIM_DEPLOY_KERNELS_LIB=$lib ncu --section SpeedOfLight --section WarpStateStats --section InstructionStats \
      --section Occupancy --section ComputeWorkloadAnalysis --section SchedulerStats --section LaunchStats \
      --metrics smsp__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_global_ld.sum,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
      -k regex:selectiveScan -c 2 python3 - <<'PY' > "$OUT/ncu_$name.txt" 2>&1
import os
import torch
from vim_deploy.ops import kernels
b, e, l, n = 128, 768, 197, 16
mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16)
d = (mk(b, e, l), mk(b, e, l) - 1, -torch.rand(e, n, device="cuda"), mk(b, n, l), mk(b, n, l),
     torch.rand(e, device="cuda"), mk(b, e, l), torch.rand(e, device="cuda"))
for _ in range(2):
    kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5, lanes=int(os.environ.get("LANES", "0")))
torch.cuda.synchronize()
PY
  echo "== $name"
  grep -E "Duration|Executed Ipc A|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy|Registers Per|Stall|pipe_xu|pipe_fma|op_shared_ld|op_global_ld|No Eligible|Local|issue_stalled" "$OUT/ncu_$name.txt" | head -60
  cuobj=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
  if [ -x "$cuobj" ]; then
    "$cuobj" -sass "$lib" | awk '/Function :/{on = /selectiveScanKernel/} on' > /tmp/sass_$name.txt
    echo "SASS of the selectiveScanKernel instantiations ($(grep -c "Function :" /tmp/sass_$name.txt) functions):" \
      | tee "$OUT/sass_mix_$name.txt"
    grep -oE "MUFU\.[A-Z0-9]+|FFMA|FMUL|FADD|FSEL|FSETP|LDS(\.[0-9]+)?|SHFL\.[A-Z]+|BAR\.[A-Z]+|IMAD|LDGSTS|STG|F2FP|HADD2" \
      /tmp/sass_$name.txt | sort | uniq -c | sort -rn | tee -a "$OUT/sass_mix_$name.txt"
  fi
done
