#!/usr/bin/env bash
# Nsight Compute of the scan kernels where issue 11's targets are measured (GPU; needs ncu):
#   fastpath_<model>_b128  the fast path's padded channel-major rows at batch 128 (kernel v18 where it applies);
#                          fastpath16_<model>_b128: rows padded to 16 tokens instead of 8
#   tiny_b8_6085           vim_tiny batch 8 @ 6085 tokens, contiguous (the chunked scan: pass A, then pass B)
# for each library given (default build/libvim_kernels.so). Per library and case: the headline metrics
# ($OUT/ncu/ncu_<lib>_<case>.txt: pipe use, issue, warps, stall reasons per issue, SM clock, DRAM) and, with
# SOURCE=1, the per-SASS-instruction source page for tools/ncu_source_regions.py ($OUT/src/src_<lib>_<case>.csv.gz).
#   bash bench/profile_ws.sh [lib ...]        CASES="fastpath_small_b128 tiny_b8_6085" (default)
# ncu runs with --clock-control none, so durations are at the card's own clock, as the benchmarks run.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/ncu" "$OUT/src" "$OUT/logs"  # at most 8 files a folder come back
export PYTHONPATH=$PWD:$PWD/bench:${PYTHONPATH:-}
libs=("$@"); [ ${#libs[@]} -eq 0 ] && libs=(build/libvim_kernels.so)
METRICS=smsp__inst_executed_pipe_xu.sum,smsp__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,\
sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,\
sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,\
smsp__inst_executed.sum,smsp__warps_active.avg.per_cycle_active,smsp__warps_eligible.avg.per_cycle_active,\
sm__cycles_elapsed.avg.per_second,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,\
l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,\
regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio
for lib in "${libs[@]}"; do
  name=$(basename "$(dirname "$lib")")
  for case in ${CASES:-fastpath_small_b128 tiny_b8_6085}; do
    sections="--section SpeedOfLight --section Occupancy --section LaunchStats"
    [ -n "${SOURCE:-}" ] && sections="$sections --section SourceCounters --import-source no"
    rep=/tmp/ncu_${name}_$case
    count=1; [ "$case" = tiny_b8_6085 ] && count=2  # the chunked scan's two passes
    VIM_DEPLOY_KERNELS_LIB=$lib CASE=$case timeout ${NCU_TIMEOUT:-240} ncu --clock-control none $sections \
        --metrics "$METRICS" -k regex:selectiveScan -c $count -f -o "$rep" python3 - <<'PY' > "$OUT/logs/ncu_log_${name}_$case.txt" 2>&1
import os
import torch
from bench_scan import WIDTH, make, fastpath_layout, channel_major, padded_length
from vim_deploy.ops import kernels
case = os.environ["CASE"]
pad = 8
if case.startswith("fastpath"):  # fastpath[<pad>]_<model>_b128
    head, model = case.split("_")[:2]
    pad, b, l = int(head[len("fastpath"):] or 8), 128, 197
else:
    model, b, l = {"tiny_b8_6085": ("tiny", 8, 6085)}[case]
e = WIDTH[model]
f, r = make(b, e, l, 16, torch.float16, 0), make(b, e, l, 16, torch.float16, 1)
out = torch.empty(b, e, l, dtype=torch.float16, device="cuda")
if case.startswith("fastpath"):
    lp = padded_length(l, pad)
    f, r, out = fastpath_layout(f, lp), fastpath_layout(r, lp), channel_major(out, lp)
for _ in range(2):
    kernels.selective_scan_multi([(*f, False), (*r, True)], True, 0.5, out=out)
torch.cuda.synchronize()
PY
    ncu -i "$rep.ncu-rep" --page details --print-units base > "$OUT/ncu/ncu_${name}_$case.txt" 2>&1
    [ -n "${SOURCE:-}" ] && ncu -i "$rep.ncu-rep" --page source --csv --print-source sass 2>/dev/null \
      | gzip > "$OUT/src/src_${name}_$case.csv.gz"
    echo "== $name $case"
    grep -E "selectiveScan|Duration|Registers Per|Achieved Occupancy|pipe_xu|pipe_fma|pipe_alu|pipe_lsu|issue_active|warps_active|warps_eligible|cycles_elapsed.avg.per_second|dram__throughput|inst_executed.sum|bank_conflicts|wavefronts" \
      "$OUT/ncu/ncu_${name}_$case.txt" | head -60
  done
done
