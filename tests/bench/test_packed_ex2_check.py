"""tools/packed_ex2_check.py: the SASS count of a packed 16-bit exp2 and the scan error of 16-bit decays."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("packed_ex2_check",
                                               Path(__file__).parents[2] / "tools" / "packed_ex2_check.py")
packed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(packed)

SASS = """
	code for sm_90
		Function : packedBf16
        /*0080*/                   MUFU.EX2.BF16 R0, R2 ;           /* 0x0000000200007308 */
        /*0090*/                   MUFU.EX2.BF16 R7, R2.H1 ;        /* 0x1000000200077308 */
        /*00a0*/                   PRMT R7, R0, 0x5410, R7 ;        /* 0x0000541000077816 */
		Function : packedF16
        /*0080*/                   MUFU.EX2.F16 R0, R2 ;            /* 0x0000000200007308 */
        /*00a0*/                   EXIT ;                           /* 0x000000000000794d */
"""


def test_mufu_instructions_are_counted_per_kernel():
    found = packed.mufu_by_kernel(SASS)
    assert found == {"packedBf16": ["MUFU.EX2.BF16 R0, R2", "MUFU.EX2.BF16 R7, R2.H1"],
                     "packedF16": ["MUFU.EX2.F16 R0, R2"]}


def test_decay_rounding_error_is_measured_not_zero():
    fp16 = packed.decay_error(64, 16, 16, "fp16", seed=1)
    bf16 = packed.decay_error(64, 16, 16, "bf16", seed=1)
    # fp16 keeps 3 more mantissa bits than bf16: its decays must cost several times less error.
    assert 0 < fp16 < bf16 / 3
    assert fp16 < 2e-3  # inside the fp16 kernel tolerance at this length (measured 3e-4 at L = 197)
    assert packed.decay_error(64, 16, 16, "fp16", seed=2) != fp16  # fresh inputs per seed


def test_bad_arguments_are_a_one_line_error(capsys):
    assert packed.main(["--lengths", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_sass_without_cuobjdump_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CUOBJDUMP", raising=False)
    assert packed.main(["--sass", "--lengths", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --sass needs nvcc and cuobjdump") and "\n" not in err


@pytest.mark.skipif(not shutil.which("nvcc") or not (os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump")),
                    reason="needs nvcc and cuobjdump (pip download nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
def test_sm90_splits_packed_ex2_into_two_mufu():
    found = packed.mufu_per_packed_op("sm_90", shutil.which("nvcc"),
                                      os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump"))
    assert [len(v) for v in found.values()] == [2, 2]
