#!/usr/bin/env bash
# Build libvim_kernels.so variants of compile-time kernel knobs (sm_90) into build/variants/<name>/, to
# carry to the GPU machine and compare there with bench/run_tuning.sh (same run, same card):
#   tools/build_kernel_variants.sh fmaexp0 "-DVIM_SCAN_FMA_EXP_PER4=0" fmaexp1 "-DVIM_SCAN_FMA_EXP_PER4=1" ...
#   (GPU) bash bench/run_tuning.sh build/variants/fmaexp0/libvim_kernels.so build/variants/fmaexp1/libvim_kernels.so
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -ge 2 ]; do
  name=$1 flags=$2; shift 2
  out=build/variants/$name
  echo "== $name: $flags"
  cmake -S plugins -B "$out/cmake" -DCMAKE_CUDA_ARCHITECTURES=90-real -DVIM_WERROR=ON "-DCMAKE_CUDA_FLAGS=$flags" > /dev/null
  cmake --build "$out/cmake" -j "$(nproc)" --target vim_kernels > /dev/null
  cp "$out/cmake/libvim_kernels.so" "$out/"
  rm -rf "$out/cmake"
done
du -sh build/variants
