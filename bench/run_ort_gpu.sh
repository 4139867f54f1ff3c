#!/usr/bin/env bash
# The exported plugin graph on onnxruntime-gpu's CUDA provider with libvim_ort_ops.so,
# over consecutive device calls on one warm machine (the ~255 MB onnxruntime-gpu wheel is larger than
# one call may carry, so it travels in parts; .whl_parts/ and .third_party/ are git-excluded):
#   here:   split -b 61m -d -a 1 onnxruntime_gpu-*.whl .whl_parts/<wheel>.part
#           vim-deploy plugin build --cuda-archs 90-real --onnxruntime-include <ORT headers>   (carry build)
#   device: bash bench/run_ort_gpu.sh add      once per part (carry that part; the first call also starts
#                                              the builds of mamba_ssm / causal-conv1d for official-fp16, 5 jobs
#                                              each of the 16 cores: exports and tests beside them stay usable;
#                                              with 8 each the GPU tests' CPU exports took 7 min)
#           bash bench/run_ort_gpu.sh check    GPU tests (ops vs float64, vim_tiny
#                                              graphs vs PyTorch, CUDA graph), validate --ort-provider cuda on
#                                              the skimage photos, compute-sanitizer memcheck
#           bash bench/run_ort_gpu.sh bench224 M  vim_M at batch 128 and 1 @ 224: ORT plugin graph vs fast path
#                                              vs hustvl/Vim's code vs the ORT portable graph, one run per table
#           bash bench/run_ort_gpu.sh bench1248 [M..] the same at batch 8 @ 1248 (PORTABLE=1: the portable graph beside
#                                              the fast path, its own run: seconds a forward)
#           bash bench/run_ort_gpu.sh profile M B R   GPU-side kernel profile of the plugin graph vs the fast path and
#                                              provider-option variants (bench/profile_ort_gpu.py)
#           bash bench/run_ort_gpu.sh blas [M]  the cuBLAS workspace setting (vim_deploy/cublas_workspace.py) on ORT's
#                                              GEMMs: vim_M's ort-optimized graph beside the fast path at batch 128
#                                              and 1 @ 224, one run with no workspace (the CLI's default), one with
#                                              32 MiB (:4096:8), then again in the reverse order
#           bash bench/run_ort_gpu.sh memcheck [ort-optimized [--no-1248]]   compute-sanitizer on sessions
#                                              (bench/memcheck_ort.py; a 1248 px session under it takes minutes)
# Every mode but add first joins and installs the wheel (once a machine). Every call after the first must
# carry .whl_parts/ogs too (onnx-graphsurgeon for the exports: a carry list replaces the previous one), and
# the calls must follow each other within the machine's idle release (~30 s), or the next call gets a
# bare machine (wheel and builds gone).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; J=/tmp/ort_parts; W=/tmp/ortw; mkdir -p $J $W
export PYTHONPATH=/tmp/ortgpu:$PWD/.whl_parts/ogs:$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 VIM_DEPLOY_ORT_OPS_LIB=$PWD/build/libvim_ort_ops.so
B="python3 -m vim_deploy bench -q"
MB=$(ls -d /tmp/build_mamba_ssm-*/ 2>/dev/null | head -1); CB=$(ls -d /tmp/build_causal_conv1d-*/ 2>/dev/null | head -1)
if [ "${1:-check}" != add ] && ! python3 -c "import onnx_graphsurgeon as gs; gs.import_onnx" 2>/dev/null; then
  echo "run_ort_gpu.sh: onnx_graphsurgeon is not importable: carry .whl_parts/ogs in this call" >&2; exit 3
fi
if [ "${1:-check}" != add ] && [ ! -d /tmp/ortgpu/onnxruntime ]; then  # join the wheel's parts and install it
  whl=$(ls $J/*.part0 | sed 's/\.part0$//')
  cat $(ls $J/*.part* | sort) > "$whl" && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ortgpu "$whl" || exit 1
fi
case "${1:-check}" in
add)
  cp .whl_parts/*.part* $J/ 2>/dev/null; ls -la $J
  if [ ! -e /tmp/builds_started ] && ls .third_party/mamba_ssm-*.tar.gz >/dev/null 2>&1; then
    touch /tmp/builds_started
    for a in .third_party/mamba_ssm-*.tar.gz .third_party/causal_conv1d-*.tar.gz; do
      n=$(basename "$a" .tar.gz); mkdir -p /tmp/src; cp "$a" /tmp/src/
      setsid nohup env MAX_JOBS=${BUILD_JOBS:-5} python3 bench/build_mamba_ssm.py "/tmp/src/$(basename $a)" "/tmp/build_$n" \
        > "/tmp/build_$n.log" 2>&1 < /dev/null &
    done
    mkdir -p /tmp/upstream && cp -r .third_party/Vim /tmp/upstream/ 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  fi ;;
check)
  python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())" | tee "$OUT/ort.txt"
  # the whole output goes to a file as it comes (a call cut by its time limit keeps what ran)
  python3 -m pytest -q -p no:cacheprovider tests/ort/test_ort_cuda_gpu.py -s ${PYTEST_K:+-k "$PYTEST_K"} 2>&1 \
     | tee "$OUT/ort_gpu_tests_all.log" | grep -E "cosine|passed|failed|Error|error" | tail -40 | tee "$OUT/ort_gpu_tests.log"
  python3 -m vim_deploy export -q -m vim_tiny --precision fp16 -o $W/t16.onnx --form ort-optimized --trace-device cuda && \
  python3 -m vim_deploy export -q -m vim_tiny -o $W/t32.onnx --form ort-optimized --trace-device cuda && \
  python3 -m vim_deploy validate --onnx $W/t16.onnx --onnx $W/t32.onnx --runtime onnxruntime --ort-provider cuda \
     --images skimage --report-md "$OUT/validate_ort_cuda.md" 2>&1 | grep -E "PASSED|FAILED|error" | tee -a "$OUT/ort_gpu_tests.log"
  ;;
memcheck)
  compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_ort.py ${2:-} ${3:-} 2>&1 \
    | tee "$OUT/memcheck_ort_all.log" | grep -vE "^\[W|Warning|warn" | tail -8 | tee "$OUT/memcheck_ort.log"
  echo "memcheck exit: ${PIPESTATUS[0]}" | tee -a "$OUT/memcheck_ort.log"
  ;;
blas)
  m=${2:-tiny}; k=0
  for cfg in :0:0 :4096:8 :4096:8 :0:0; do
    k=$((k + 1))
    CUBLAS_WORKSPACE_CONFIG=$cfg $B -m vim_$m --backends onnxruntime-fp16-ort-optimized,fastpath-fp16 \
      --batch 128,1 --resolutions 224 --warmup 3 --iters 20 --out-dir $W/blas_$k 2>&1 | grep -E "^\||^#|error"
  done 2>&1 | tee "$OUT/ort_blas_$m.md" ;;
profile)
  python3 bench/profile_ort_gpu.py --model vim_${2:-tiny} --batch ${3:-128} --res ${4:-224} --out "$OUT" 2>&1 \
    | grep -vE "^\[W|Warning|warn" | tail -80 ;;
bench224|bench1248)   # bench224 <tiny|small|base>: one model a call (each call's tables come back in $OUT)
  export PYTHONPATH=${MB:-/nonexistent}:${CB:-/nonexistent}:$PYTHONPATH
  tail -qn1 /tmp/build_*.log 2>/dev/null
  up="--upstream /tmp/upstream/Vim"
  if [ "$1" = bench224 ]; then
    m=${2:-tiny}
    ORTB=onnxruntime-fp16-fused,onnxruntime-fp16-ort-optimized
    $B -m vim_$m --backends $ORTB,fastpath-fp16,official-fp16,onnxruntime $up \
       --batch 128 --resolutions 224 --warmup 2 --iters 10 --out-dir $W/b128_$m 2>&1 | grep -E "^\||Note|error|^- "
    $B -m vim_$m --backends $ORTB,fastpath-fp16,official-fp16,onnxruntime $up \
       --batch 1 --resolutions 224 --warmup 5 --iters 30 --out-dir $W/b1_$m 2>&1 | grep -E "^\||Note|error|^- "
    python3 bench/merge_bench.py "$OUT/ort_224_$m" $W/b128_$m $W/b1_$m > /dev/null
  else
    models="${*:2}"; models=${models:-tiny small base}
    # PORTABLE=1: the portable graph (an ONNX Scan stepped from the host: seconds a forward at L = 6085)
    # beside the fast path (and the official code once built) in a run of its own, 1 warm-up and 3 timed
    # runs, one model per run
    BK=onnxruntime-fp16-ort-optimized,fastpath-fp16,official-fp16; IT="--warmup 2 --iters 10"
    [ -n "${PORTABLE:-}" ] && BK=onnxruntime,fastpath-fp16${MB:+,official-fp16} IT="--warmup 1 --iters 3"
    for m in $models; do
      $B -m vim_$m --backends $BK $up --batch 8 --resolutions 1248 $IT --out-dir $W/b8_$m 2>&1 | grep -E "^\||Note|error|^- "
      # merged after every model, not once at the end: a call cut by its time limit keeps the models that ran
      python3 bench/merge_bench.py "$OUT/ort_1248${PORTABLE:+_portable}" $(for d in $models; do [ -d $W/b8_$d ] && echo $W/b8_$d; done) > /dev/null
    done
  fi ;;
esac
