#!/usr/bin/env bash
# End-to-end benchmark on a CUDA machine (issue 4's sweeps), outputs gathered under $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; W=/tmp/e2e; mkdir -p $W
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
B="python3 -m vim_deploy bench -q"
$B -m vim_tiny --backends fastpath-fp16,deit_tiny-math-fp16,deit_tiny-sdpa-fp16 --batch 8 --resolutions paper \
   --warmup 2 --iters 10 --out-dir $W/res
for m in vim_tiny vim_small vim_base; do
  $B -m $m --backends pytorch-fp16,fastpath-fp16 --batch 128 --resolutions 224 --warmup 1 --iters 5 --out-dir $W/b128_$m
done
$B -m vim_tiny --backends pytorch-fp16,fastpath-fp16 --batch 1 --resolutions 224 --warmup 3 --iters 20 --out-dir $W/b1
cp $W/res/bench.json $OUT/res.json; cp $W/res/bench.png $OUT/res.png
for d in b128_vim_tiny b128_vim_small b128_vim_base b1; do cp $W/$d/bench.json $OUT/$d.json; done
cat $W/*/bench.md > $OUT/all.md; cat $OUT/all.md
