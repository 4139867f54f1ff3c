#!/usr/bin/env bash
# Same-machine A/B of kernel libraries on whole forwards: ROUNDS rounds of bench/profile_model.py (CUDA-graph
# replay, fp16 fast path) over every library, the order reversed every other round, then the median graph
# time per library and case, with the conv and scan kernels' time. Libraries are built here (sm_90) and carried:
#   ROUNDS=2 CASES="vim_small:128x224 vim_base:128x224 vim_tiny:8x1248" bash bench/run_model_ab.sh \
#       build/variants/cur/libvim_kernels.so build/libvim_kernels.so
# A variant may also name a tree of the Python code, LIB,TREE: TREE/bench/profile_model.py then runs on TREE's
# vim_deploy (e.g. `git archive <ref> vim_deploy bench/profile_model.py | tar -x -C .ab_old`, not committed):
#   bash bench/run_model_ab.sh build/libvim_kernels.so,.ab_old build/libvim_kernels.so
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
libs=("$@")
rm -rf /tmp/mab  # this run's profiles only
for ((k = 0; k < ${ROUNDS:-2}; k++)); do
  order=("${libs[@]}")
  if ((k % 2)); then order=(); for ((i = ${#libs[@]} - 1; i >= 0; i--)); do order+=("${libs[i]}"); done; fi
  for v in "${order[@]}"; do
    lib=${v%%,*}; tree=.; [[ $v == *,* ]] && tree=${v#*,}
    for c in ${CASES:-vim_small:128x224}; do
      tag=$(echo "$v" | tr '/,' '__')__${c/:/_}_$k
      VIM_DEPLOY_KERNELS_LIB=$(realpath "$lib") PYTHONPATH=$(realpath "$tree"):$PYTHONPATH \
        python3 "$tree/bench/profile_model.py" --model "${c%%:*}" --cases "${c#*:}" --top 30 \
        --out "/tmp/mab/$tag" > /dev/null 2>&1 || echo "round $k $v $c failed"
    done
  done
done
python3 - "${libs[@]}" <<'PY' | tee "$OUT/model_ab.md"
import glob, json, statistics, sys
libs = sys.argv[1:]
print("| case | " + " | ".join(f"{lib}: graph ms (conv ms, scan ms)" for lib in libs) + " |")
print("|---" * (len(libs) + 1) + "|")
cases = {}
for lib in libs:
    for f in glob.glob(f"/tmp/mab/{lib.replace('/', '_').replace(',', '_')}__*/profile_model.json"):
        r = json.load(open(f))
        c = r["cases"][0]
        conv = sum(t["ms"] for t in c["top"] if "causalConv" in t["kernel"])
        scan = sum(t["ms"] for t in c["top"] if "selectiveScan" in t["kernel"])
        cases.setdefault(f"{r['model']} b{c['batch']} @ {c['res']}", {}).setdefault(lib, []).append(
            (c["graph_ms"], conv, scan))
for case, per in cases.items():
    cells = []
    for lib in libs:
        v = per.get(lib, [])
        med = lambda i: statistics.median(t[i] for t in v)  # noqa: E731
        cells.append(f"{med(0):.3f} ({med(1):.3f}, {med(2):.3f}); n={len(v)}" if v else "failed")
    print(f"| {case} | " + " | ".join(cells) + " |")
PY
