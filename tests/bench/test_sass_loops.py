"""tools/sass_loops.py: loops and their instruction mix from `cuobjdump -sass` text (no toolkit needed)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("sass_loops", Path(__file__).parents[2] / "tools" / "sass_loops.py")
sass_loops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sass_loops)

SASS = """
	code for sm_90
		Function : kernelA
	.headerflags	@"EF_CUDA_SM90"
        /*0000*/                   MOV R1, c[0x0][0x28] ;                 /* 0x00000a0000017a02 */
        /*0010*/                   FMUL.FTZ R2, R3, R4 ;                  /* 0x0000000403027220 */
        /*0020*/                   MUFU.EX2 R2, R2 ;                      /* 0x0000000200027308 */
        /*0030*/                   MUFU.EX2 R5, R2 ;                      /* 0x0000000200057308 */
        /*0040*/                   LDS.128 R8, [R6] ;                     /* 0x0000000006087984 */
        /*0050*/              @!P0 BRA 0x10 ;                             /* 0xfffffffc00008947 */
        /*0060*/                   BRA 0x80 ;                             /* 0x0000000000007947 */
        /*0070*/                   MUFU.EX2 R2, R2 ;                      /* 0x0000000200027308 */
        /*0080*/                   EXIT ;                                 /* 0x000000000000794d */
		Function : kernelB
        /*0000*/                   EXIT ;                                 /* 0x000000000000794d */
"""


def test_functions_and_loops_are_found():
    funcs = sass_loops.parse_functions(SASS)
    assert list(funcs) == ["kernelA", "kernelB"]
    assert len(funcs["kernelA"]) == 9 and funcs["kernelA"][5] == (0x50, "@!P0 BRA 0x10")
    found = sass_loops.loops(funcs["kernelA"], min_mufu=2)
    assert len(found) == 1  # the forward branch is not a loop; the EX2 after the loop is outside it
    loop = found[0]
    assert (loop["start"], loop["end"], loop["instructions"]) == (0x10, 0x50, 5)
    assert loop["mix"]["MUFU.EX2"] == 2 and loop["mix"]["LDS.128"] == 1 and loop["mix"]["BRA"] == 1
    assert sass_loops.loops(funcs["kernelA"], min_mufu=3) == []


def test_missing_tool_or_library_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUOBJDUMP", "")
    monkeypatch.setattr(sass_loops.shutil, "which", lambda _: None)
    assert sass_loops.main([str(tmp_path / "lib.so")]) == 2
    assert "cuobjdump not found" in capsys.readouterr().err
    monkeypatch.setenv("CUOBJDUMP", "/bin/true")
    assert sass_loops.main([str(tmp_path / "missing.so")]) == 2
    assert "no such file" in capsys.readouterr().err
