"""Build mamba_ssm's `selective_scan_cuda` extension from its source archive (benchmark baseline).

Usage: python bench/build_mamba_ssm.py <mamba_ssm-X.tar.gz> <build_dir>
Only csrc/selective_scan is compiled (fwd and bwd sources are both needed to link), for the GPU
present (sm_90 on the H100), with the nvcc flags of mamba_ssm's setup.py. Nothing of mamba_ssm is
kept in this repository: the archive comes from the package registry at run time.
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
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if "/csrc/selective_scan/" in m.name]
        tf.extractall(build_dir, members=members, filter="data")
    src = glob.glob(os.path.join(build_dir, "*", "csrc", "selective_scan"))[0]
    sources = [os.path.join(src, "selective_scan.cpp")] + sorted(
        f for f in glob.glob(os.path.join(src, "*.cu")) if "complex" not in f or True)
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    t = time.time()
    mod = load(
        name="selective_scan_cuda", sources=sources, build_directory=build_dir, verbose=False,
        extra_cflags=["-O3", "-std=c++17"],
        extra_cuda_cflags=["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                           "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
                           f"-gencode=arch=compute_{arch},code=sm_{arch}"],
    )
    print(f"built selective_scan_cuda in {time.time() - t:.0f} s: {mod.__file__}", flush=True)
    return mod


if __name__ == "__main__":
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    build(sys.argv[1], sys.argv[2])
