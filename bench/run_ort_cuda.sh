#!/usr/bin/env bash
# onnxruntime's CUDA provider on the portable graph, on the GPU machine (issue 4). The device image
# has onnxruntime (CPU) only and no onnx-graphsurgeon (the exporter needs it); onnxruntime-gpu 1.31.1
# (CUDA 13, like the image's torch cu130) is 255 MB, over one call's 64 MiB, so it travels in parts,
# one call each, on a machine kept warm (git-excluded folder .whl_parts/):
#   here:   split -b 52m -d -a 1 onnxruntime_gpu-*.whl .whl_parts/<wheel>.part
#           mkdir -p .whl_parts/ogs && cp -r <site-packages>/onnx_graphsurgeon .whl_parts/ogs/   (pure Python)
#   device: bash bench/run_ort_cuda.sh add      (once per part; carry only that part: .whl_parts/<wheel>.partN)
#           bash bench/run_ort_cuda.sh bench    (carry .whl_parts/ogs: joins, installs to /tmp/ortgpu, benchmarks
#                                                onnxruntime-cuda beside our fast path; the PyTorch reference at
#                                                ~1 img/s would take minutes)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; J=/tmp/ort_parts; mkdir -p $J
case "${1:-bench}" in
add)
  cp .whl_parts/*.part* $J/ 2>/dev/null; ls -la $J ;;
bench)
  if [ ! -d /tmp/ortgpu/onnxruntime ]; then
    whl=$(ls $J/*.part0 | sed 's/\.part0$//')
    cat $(ls $J/*.part* | sort) > "$whl" && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ortgpu "$whl" || exit 1
  fi
  export PYTHONPATH=/tmp/ortgpu:$PWD/.whl_parts/ogs:$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
  # torch's CUDA 13 libraries (cublas, cudart, curand, cudnn) serve onnxruntime's CUDA provider
  python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
  python3 -m vim_deploy bench -q -m vim_tiny --backends onnxruntime,fastpath-fp16 --batch 1,8 --resolutions 224 \
     --warmup 2 --iters 10 --out-dir /tmp/ort_bench && cp /tmp/ort_bench/bench.json "$OUT/ort_cuda.json" \
     && cp /tmp/ort_bench/bench.md "$OUT/ort_cuda.md" && cat /tmp/ort_bench/bench.md ;;
esac
