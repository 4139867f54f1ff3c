"""The polynomial exp2 / softplus of plugins/common/fmaExp2.cuh (the CPU scan's, with no libm call in its
vectorized state loop) against float64."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INC = ROOT / "plugins" / "common"


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
