# Sourced by the end-to-end scripts (bench/run_e2e.sh, bench/run_e2e_official.sh): the compiled baselines
# hustvl/Vim's code runs on, mamba_ssm's selective_scan_cuda and causal-conv1d's causal_conv1d_cuda, built
# from the archives carried in .third_party/ (bench/build_mamba_ssm.py) into /tmp/build_<archive name>.

# Start both builds in the background, detached (setsid): they outlive the device call that started them.
start_baseline_builds() {
  local a n
  for a in .third_party/mamba_ssm-*.tar.gz .third_party/causal_conv1d-*.tar.gz; do
    n=$(basename "$a" .tar.gz)
    setsid nohup env MAX_JOBS=12 python3 bench/build_mamba_ssm.py "$a" "/tmp/build_$n" > "/tmp/build_$n.log" 2>&1 \
      < /dev/null &
  done
}

# Wait (up to $1 x 5 s) until both extensions import, then put them on PYTHONPATH. torch is imported first: a
# torch C++ extension does not load without libc10 already loaded.
wait_baseline_builds() {
  local i
  for ((i = 0; i < ${1:-90}; i++)); do
    MB=$(ls -d /tmp/build_mamba_ssm-* 2>/dev/null | head -1); CB=$(ls -d /tmp/build_causal_conv1d-* 2>/dev/null | head -1)
    PYTHONPATH=$MB:$CB python3 -c "import torch, selective_scan_cuda, causal_conv1d_cuda" 2>/dev/null && break
    sleep 5
  done
  tail -qn1 /tmp/build_*.log
  export PYTHONPATH=$MB:$CB:$PYTHONPATH
}
