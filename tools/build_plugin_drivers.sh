#!/usr/bin/env bash
# Build, on the CPU machine, the TensorRT plugin library and the plugin host test driver (CPU and GPU
# builds) for each TensorRT header set, into build/drivers/<name>/, to carry to the GPU machine
# (bench/run_plugin_driver_gpu.sh). The headers stay outside the repository; nothing built from them
# is committed (build/ is git-ignored).
#
#   VIM_DEPLOY_TRT_HEADERS=<8.5.2 include>:<8.6.1 include>:<10.3.0 include>:<11.1 include> tools/build_plugin_drivers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VIM_DEPLOY_TRT_HEADERS:?set VIM_DEPLOY_TRT_HEADERS to TensorRT include folders}"
CUDA_INC=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || CUDA_INC=/usr/local/cuda/include
CUDA_LIB=$(dirname "$CUDA_INC")/lib64
IFS=: read -ra dirs <<< "$VIM_DEPLOY_TRT_HEADERS"
for inc in "${dirs[@]}"; do
  ver=$(grep -E "#define (NV_TENSORRT|TRT)_(MAJOR|MINOR)[A-Z_]* [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -2 | paste -sd.)
  out=build/drivers/trt-$ver; mkdir -p "$out"
  echo "== TensorRT $ver headers: $inc -> $out"
  TENSORRT_INCLUDE_DIR=$inc cmake -S plugins -B "$out/cmake" -DCMAKE_CUDA_ARCHITECTURES=90-real -DVIM_WERROR=ON > /dev/null
  cmake --build "$out/cmake" -j "$(nproc)" --target vim_trt_plugin > /dev/null
  cp "$out/cmake/libvim_trt_plugin.so" "$out/"
  [ -d "$out/cmake/stubs" ] && mkdir -p "$out/stubs" && cp -P "$out/cmake/stubs/"libnvinfer.so* "$out/stubs/"
  g++ -std=c++17 -O1 -Wall -Wextra -Werror -isystem "$inc" -isystem "$CUDA_INC" plugins/tests/pluginHostDriver.cpp \
      -o "$out/driver" -ldl -rdynamic
  g++ -std=c++17 -O1 -Wall -Wextra -Werror -DVIM_DRIVER_GPU -isystem "$inc" -isystem "$CUDA_INC" \
      plugins/tests/pluginHostDriver.cpp -o "$out/driver_gpu" -ldl -rdynamic -L"$CUDA_LIB" -lcudart_static -lrt -lpthread
  rm -rf "$out/cmake"
  LD_LIBRARY_PATH=$out/stubs "$out/driver" "$out/libvim_trt_plugin.so" | tail -1
done
du -sh build/drivers
