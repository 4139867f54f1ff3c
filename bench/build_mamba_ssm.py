"""Build the compiled baselines from their registry source archives: mamba_ssm's
`selective_scan_cuda` and causal-conv1d's `causal_conv1d_cuda` (the kernels hustvl/Vim runs on).

Usage: python bench/build_mamba_ssm.py <mamba_ssm-X.tar.gz | causal_conv1d-X.tar.gz> <build_dir>
Only the CUDA sources are compiled (csrc/selective_scan of mamba_ssm, csrc of causal-conv1d; fwd,
bwd and update sources are all needed to link), for the GPU present (sm_90 on the H100), with the
nvcc flags of their setup.py. Nothing of either package is kept in this repository: the archives
come from the package registry at run time.
"""

import glob
import os
import sys
import tarfile
import time


def build(archive: str, build_dir: str):
    import torch
    from torch.utils.cpp_extension import load

    os.makedirs(build_dir, exist_ok=True)
    conv = "causal_conv1d" in os.path.basename(archive)
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if ("/csrc/" if conv else "/csrc/selective_scan/") in m.name]
        tf.extractall(build_dir, members=members, filter="data")
    if conv:
        src = glob.glob(os.path.join(build_dir, "*", "csrc"))[0]
        sources = [os.path.join(src, "causal_conv1d.cpp")] + sorted(glob.glob(os.path.join(src, "*.cu")))
    else:
        src = glob.glob(os.path.join(build_dir, "*", "csrc", "selective_scan"))[0]
        sources = [os.path.join(src, "selective_scan.cpp")] + sorted(glob.glob(os.path.join(src, "*.cu")))
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    t = time.time()
    mod = load(
        name="causal_conv1d_cuda" if conv else "selective_scan_cuda", sources=sources, build_directory=build_dir, verbose=False,
        extra_cflags=["-O3", "-std=c++17"],
        extra_cuda_cflags=["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                           "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
                           f"-gencode=arch=compute_{arch},code=sm_{arch}"],
    )
    print(f"built {'causal_conv1d_cuda' if conv else 'selective_scan_cuda'} in {time.time() - t:.0f} s: {mod.__file__}", flush=True)
    return mod


if __name__ == "__main__":
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    build(sys.argv[1], sys.argv[2])
