#!/usr/bin/env bash
# The plugin host test driver on the GPU: for each library built by
# tools/build_plugin_drivers.sh (carry build/drivers), the CPU part plus GPU enqueues against float64,
# then compute-sanitizer memcheck on the driver of the oldest and the newest TensorRT headers.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
for d in build/drivers/trt-*; do
  echo "== $d"
  LD_LIBRARY_PATH=$d/stubs "$d/driver_gpu" "$d/libvim_trt_plugin.so" --gpu > "$OUT/$(basename $d).log" 2>&1
  rc=$?; status=$((status + rc))
  grep -v "^PASS" "$OUT/$(basename $d).log"; echo "PASS lines: $(grep -c '^PASS' "$OUT/$(basename $d).log"), exit $rc"
done
for d in $(ls -d build/drivers/trt-* | sed -n '1p;$p'); do
  LD_LIBRARY_PATH=$d/stubs compute-sanitizer --tool memcheck --error-exitcode 9 "$d/driver_gpu" "$d/libvim_trt_plugin.so" --gpu \
    2>&1 | tail -2 | tee -a "$OUT/memcheck_driver.log"
done
exit $status
