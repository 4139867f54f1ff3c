"""The FMA-pipe exp2 (plugins/selective_scan/fmaExp2.cuh, issue 11's first lever) against float64 on the
host, and its device code free of MUFU exp2 (PTX: only fma / integer ops)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INC = ROOT / "plugins" / "selective_scan"


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_fma_exp2_error_bound_against_float64(tmp_path):
    exe = tmp_path / "fma_exp2"
    r = subprocess.run(["g++", "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", f"-I{INC}",
                        str(ROOT / "plugins" / "tests" / "fmaExp2Test.cpp"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout
    err = float(re.search(r"max relative error ([0-9.e+-]+)", r.stdout).group(1))
    assert 0 < err <= 2.5e-7  # ex2.approx.f32's own bound is ~2^-22 = 2.4e-7


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit)")
def test_fma_exp2_device_code_uses_no_mufu_exp(tmp_path):
    src = tmp_path / "k.cu"
    src.write_text('#include "fmaExp2.cuh"\n'
                   "__global__ void k(float const* x, float* y) { y[threadIdx.x] = vim::fmaExp2(x[threadIdx.x]); }\n")
    ptx = tmp_path / "k.ptx"
    r = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_90", "-O3", f"-I{INC}", "-ptx", str(src), "-o", str(ptx)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = ptx.read_text()
    assert "ex2." not in text and "cvt.rni" not in text and "cvt.rzi" not in text
    assert text.count("fma.rn.f32") == 5
