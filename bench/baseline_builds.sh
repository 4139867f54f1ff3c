# Sourced by the end-to-end and check scripts (bench/run_e2e.sh, run_gpu_checks.sh): the compiled baselines
# hustvl/Vim's code runs on, mamba_ssm's selective_scan_cuda and causal-conv1d's causal_conv1d_cuda, built
# from the archives carried in .third_party/ (bench/build_mamba_ssm.py) into /tmp/build_<archive name>, and
# the tables of that code beside our fast path.

# Start both builds in the background, detached (setsid): they outlive the script run that started them.
start_baseline_builds() {
  local a n
  for a in .third_party/mamba_ssm-*.tar.gz .third_party/causal_conv1d-*.tar.gz; do
    n=$(basename "$a" .tar.gz)
    setsid nohup env MAX_JOBS=12 python3 bench/build_mamba_ssm.py "$a" "/tmp/build_$n" > "/tmp/build_$n.log" 2>&1 \
      < /dev/null &
  done
}

# Whether the modules named after $1 import with the folder(s) $1 in front of PYTHONPATH. torch is imported
# first: a torch C++ extension does not load without libc10 already loaded.
importable() {
  local path=$1; shift
  PYTHONPATH=$path:${PYTHONPATH:-} python3 -c "import torch; $(printf 'import %s; ' "$@")" 2>/dev/null
}

# Wait (up to $1 x 5 s) until both extensions import, then put them on PYTHONPATH.
wait_baseline_builds() {
  local i
  for ((i = 0; i < ${1:-90}; i++)); do
    MB=$(ls -d /tmp/build_mamba_ssm-* 2>/dev/null | head -1); CB=$(ls -d /tmp/build_causal_conv1d-* 2>/dev/null | head -1)
    importable "$MB:$CB" selective_scan_cuda causal_conv1d_cuda && break
    sleep 5
  done
  tail -qn1 /tmp/build_*.log
  export PYTHONPATH=$MB:$CB:$PYTHONPATH
}

# hustvl/Vim's code (official-fp16) beside our fast path, one `vim-deploy bench` run a table, into $W/off_*:
# batch 128 @ 224 for Vim-T/S/B, then vim_tiny at batch 1. Needs $B (the bench command), $W and the builds.
official_tables() {
  local m
  for m in tiny small base; do
    $B -m vim_$m --backends official-fp16,fastpath-fp16 --upstream .third_party/Vim --batch 128 --resolutions 224 \
       --warmup 3 --iters 20 --out-dir "$W/off_b128_vim_$m"
  done
  $B -m vim_tiny --backends official-fp16,fastpath-fp16 --upstream .third_party/Vim --batch 1 --resolutions 224 \
     --warmup 5 --iters 50 --out-dir "$W/off_b1"
}
