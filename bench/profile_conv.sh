#!/usr/bin/env bash
# Nsight Compute profile of the causal conv1d + SiLU kernel (both directions, fp16) on the fast path's
# vim_small batch-128 input (channel-major: (768 channels, 128 x 200 tokens), 197 valid a batch): what
# bounds it at ~41 us a layer against ~28 us at the copy ceiling (bench/RESULTS.md). Writes
# $OUT/ncu_conv.txt and prints the headline metrics. Needs ncu (the device image has it).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-}
ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
    --section SchedulerStats --section LaunchStats --section InstructionStats \
    --metrics smsp__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,dram__bytes_read.sum,dram__bytes_write.sum,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
    -k regex:causalConv -c 2 python3 - <<'PY' > "$OUT/ncu_conv.txt" 2>&1
import torch
from vim_deploy.ops import kernels
b, e, lp, l = 128, 768, 200, 197
xz = torch.randn(2 * e, b * lp, device="cuda", dtype=torch.float16)
x = xz[:e].view(e, b, lp).permute(1, 0, 2)[..., :l]  # the fast path's (B, E, L) view, batches lp apart in a row
w = lambda: torch.randn(e, 4, device="cuda")  # noqa: E731
for _ in range(2):
    kernels.causal_conv1d_silu(x, w(), torch.randn(e, device="cuda"), w(), torch.randn(e, device="cuda"))
torch.cuda.synchronize()
PY
grep -E "Duration|DRAM Throughput|Memory Throughput|Executed Ipc A|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|No Eligible|pipe_xu|dram__bytes|issue_stalled|Executed Instructions  " "$OUT/ncu_conv.txt" | head -60
