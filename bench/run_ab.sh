#!/usr/bin/env bash
# Same-run A/B of kernel libraries with the position in the run balanced: ROUNDS rounds of the quick scan
# benchmark over every library, the order reversed every other round (the first library of a run was
# seen ~3% slow on the H200), then the median per library and shape. Libraries are built here (sm_90)
# and carried:  ROUNDS=4 bash bench/run_ab.sh build/variants/a/libvim_kernels.so build/variants/b/...
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
libs=("$@")
for ((k = 0; k < ${ROUNDS:-4}; k++)); do
  order=("${libs[@]}")
  if ((k % 2)); then order=(); for ((i = ${#libs[@]} - 1; i >= 0; i--)); do order+=("${libs[i]}"); done; fi
  for lib in "${order[@]}"; do
    name=$(basename "$(dirname "$lib")")
    VIM_DEPLOY_KERNELS_LIB=$lib python3 bench/bench_scan.py ${BENCH_ARGS:---quick} --out /tmp >/dev/null 2>&1 \
      && cp /tmp/bench_scan.json "/tmp/ab_${name}_$k.json" || echo "round $k $name failed"
  done
done
python3 - "${libs[@]}" <<'PY' | tee "$OUT/ab_summary.md"
import glob, json, os, statistics, sys
names = [os.path.basename(os.path.dirname(p)) for p in sys.argv[1:]]
table = {}
for n in names:
    for f in sorted(glob.glob(f"/tmp/ab_{n}_*.json")):
        for r in json.load(open(f))["rows"]:
            table.setdefault((r["model"], r["batch"], r["L"]), {}).setdefault(n, []).append(r["ours_fused_us"])
print("| shape | " + " | ".join(names) + " |")
print("|---" * (len(names) + 1) + "|")
for shape, per in table.items():
    base = statistics.median(per[names[0]])
    cells = [f"{statistics.median(per[n]):.1f} ({statistics.median(per[n]) / base:.3f}; {min(per[n]):.1f}-{max(per[n]):.1f})" for n in names]
    print(f"| {shape[0]} b{shape[1]} L{shape[2]} | " + " | ".join(cells) + " |")
PY
cp /tmp/ab_*.json "$OUT/" 2>/dev/null; tar czf "$OUT/ab_raw.tgz" -C /tmp $(cd /tmp && ls ab_*.json) && rm -f "$OUT"/ab_*.json
