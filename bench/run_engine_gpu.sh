#!/usr/bin/env bash
# The TensorRT-family engine path on a GPU: TensorRT-RTX's builder and runtime with our plugin
# (vim-deploy build -> validate --engine -> bench --backends tensorrt), then compute-sanitizer on one
# engine run. TensorRT-RTX's library wheel is larger than one transfer, so it travels in two parts:
#
#   here:   split -b 48m -d -a 1 tensorrt_rtx_cu13_libs-<v>-py3-none-manylinux_2_28_x86_64.whl .rtx/libs.part
#           (.rtx/whl/ holds tensorrt_rtx_cu13-<v> (pure Python, built from its sdist), its cp312 bindings,
#           onnx-graphsurgeon and polygraphy; .rtx/ is git-excluded)
#   GPU:    bash bench/run_engine_gpu.sh stash    (carry .rtx/libs.part0)
#           bash bench/run_engine_gpu.sh engine   (carry .rtx/libs.part1, .rtx/whl, build; same warm machine)
#
# build/ holds libvim_trt_plugin.so (V3 adapter, TensorRT 11 headers), libvim_kernels.so and
# libvim_ort_ops.so built for sm_90 (vim-deploy plugin build --cuda-archs 90-real ...).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
# at most 8 files come back from a device call: everything goes to R and back as one archive
R=/tmp/engine_results; rm -rf $R; mkdir -p $R
trap 'tar czf "$OUT/engine_results.tgz" -C $R . ; cp $R/engine.log "$OUT/" 2>/dev/null' EXIT
STASH=/tmp/rtx_stash
export PYTHONUNBUFFERED=1
stage=${1:-engine}

if [ "$stage" = stash ]; then
  mkdir -p $STASH && cp .rtx/libs.part0 $STASH/ && ls -la $STASH
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$OUT/gpu.txt"
  exit 0
fi

[ -f $STASH/libs.part0 ] || { echo "run_engine_gpu.sh: $STASH/libs.part0 is missing: run the stash stage first on this warm machine" >&2; exit 3; }
whl=/tmp/tensorrt_rtx_cu13_libs-1.7.1.116-py3-none-manylinux_2_28_x86_64.whl
cat $STASH/libs.part0 .rtx/libs.part1 > $whl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $whl .rtx/whl/*.whl || exit 4
export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-}
export VIM_DEPLOY_PLUGIN_LIB=$PWD/build/libvim_trt_plugin.so VIM_DEPLOY_ORT_OPS_LIB=$PWD/build/libvim_ort_ops.so
LOG="$R/engine.log"
say() { echo "== $*" | tee -a "$LOG"; }
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$R/gpu.txt" | tee -a "$LOG"
vd() { timeout "${T:-300}" python3 -m vim_deploy "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

say "TensorRT-RTX on this GPU: version, builder, runtime"
timeout 120 python3 - <<'EOF' 2>&1 | tee -a "$LOG"
import tensorrt_rtx as trt
print("tensorrt_rtx", trt.__version__)
log = trt.Logger(trt.Logger.VERBOSE)
b = trt.Builder(log)
print("builder:", b is not None, "platform_has_fast_fp16:", getattr(b, "platform_has_fast_fp16", "n/a"))
r = trt.Runtime(log)
print("runtime:", r is not None)
EOF

W=/tmp/engines; mkdir -p $W
status=0
for form in "fp32 plain" "fp16 plain" "fp16 fused"; do
  set -- $form; prec=$1; fuse=""; [ "$2" = fused ] && fuse=--fuse-bidirectional
  name=vim_tiny_${prec}_$2
  say "export $name"
  vd export -m vim_tiny --precision "$prec" $fuse -o $W/$name.onnx -q || { status=1; continue; }
  say "build $name (TensorRT-RTX, plugin $VIM_DEPLOY_PLUGIN_LIB)"
  T=600 vd build --onnx $W/$name.onnx -o $W/$name.plan --batch 1:8:128 --report-json "$R/build_$name.json" || { status=1; continue; }
  say "validate --engine $name"
  vd validate --engine $W/$name.plan --images skimage --report-json "$R/validate_$name.json" --report-md "$R/validate_$name.md" || status=1
done

if [ -f $W/vim_tiny_fp16_plain.plan ] && [ -z "${SKIP_BENCH:-}" ]; then
  say "bench: tensorrt beside fastpath-fp16 and pytorch-fp16, b1 and b128 @ 224"
  T=600 vd bench -m vim_tiny --backends tensorrt,fastpath-fp16,pytorch-fp16 --engine $W/vim_tiny_fp16_plain.plan \
    --batch 1,128 --warmup 5 --iters 30 --out-dir "$R/bench" || status=1
  say "compute-sanitizer memcheck on one engine validation"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m vim_deploy validate \
    --engine $W/vim_tiny_fp16_plain.plan --num-random 2 --batch-size 2 2>&1 | tail -6 | tee -a "$LOG"
  echo "memcheck exit: ${PIPESTATUS[0]}" | tee -a "$LOG"
fi
exit $status
