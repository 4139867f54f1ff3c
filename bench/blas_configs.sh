#!/usr/bin/env bash
# Issue 11: does a cuBLAS setting remove the memsets of a fast-path forward (3 a layer, before in_proj, dt_proj
# and out_proj) without slowing the GEMMs? Each setting runs bench/profile_model.py in its own process (torch
# reads these variables when it starts), in the order $ORDER (balanced by default), and prints the graph-replay
# time, the memset line and, on each setting's first run, a forward's first GPU activities in launch order.
#   bash bench/blas_configs.sh [model] [case]    (carry build/libvim_kernels.so)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
MODEL=${1:-vim_small}; CASE=${2:-128x224}
declare -A CFG=(
  [default]=""
  [ws0]="CUBLAS_WORKSPACE_CONFIG=:0:0"
  [lt]="TORCH_BLAS_PREFER_CUBLASLT=1"
  [lt_ws0]="TORCH_BLAS_PREFER_CUBLASLT=1 CUBLASLT_WORKSPACE_SIZE=0"
)
ORDER=${ORDER:-"default ws0 lt lt_ws0 lt ws0 default"}
declare -A SEEN=()
for c in $ORDER; do
  seq=0; [ -z "${SEEN[$c]:-}" ] && seq=30; SEEN[$c]=1
  echo "## $c (${CFG[$c]:-torch defaults})"
  env -u CUBLAS_WORKSPACE_CONFIG -u TORCH_BLAS_PREFER_CUBLASLT -u CUBLASLT_WORKSPACE_SIZE ${CFG[$c]} \
    python3 bench/profile_model.py --model "$MODEL" --cases "$CASE" --top 12 --sequence $seq \
      --out "/tmp/blas_$c" 2>&1 | grep -v "^USDT" | grep -E "graph replay|memset|Memset|nvjet|cutlass|gemm|first|  us  |^    " \
      | head -60
done 2>&1 | tee "$OUT/blas_configs_${MODEL}_${CASE//,/_}.txt"
