"""tools/ncu_source_regions.py: charging ncu source-page rows to token loops and tile code (no GPU needed)."""

import gzip
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "ncu_source_regions", Path(__file__).parents[2] / "tools" / "ncu_source_regions.py")
regions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regions)

HEADER = ('"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)",'
          '"Instructions Executed","stall_long_sb","stall_wait","stall_long_sb (Not Issued)"')


def row(addr, text, executed, samples, long_sb=0, wait=0):
    return f'"{addr:#x}","{text}","{samples}","0","{executed}","{long_sb}","{wait}","0"'


def write_csv(path, rows):
    body = "\n".join(['"Kernel Name","k",', HEADER] + rows) + "\n"
    with gzip.open(path, "wt") as f:
        f.write(body)


def test_loops_and_tile_code_are_charged_separately(tmp_path):
    base = 0x7f0000001000
    rows = [
        row(base + 0x00, "LDG.E R60, desc[UR4][R2.64]", 10, 1),
        row(base + 0x10, "FMUL.FTZ R2, R3, R4", 100, 5, wait=5),          # loop body: 0x10..0x40
        row(base + 0x20, "MUFU.EX2 R2, R2", 100, 10, wait=10),
        row(base + 0x30, "MUFU.EX2 R5, R2", 100, 10, wait=10),
        row(base + 0x40, f"@!P0  BRA {base + 0x10:#x}", 100, 4, wait=4),
        row(base + 0x50, "FADD.FTZ R7, R7, R60", 10, 20, long_sb=20),      # after the loop: tile code
        row(base + 0x60, "STG.E.U16 desc[UR4][R4.64], R7", 10, 0),
    ]
    path = tmp_path / "src.csv.gz"
    write_csv(path, rows)
    parsed = regions.read_rows(str(path))
    assert len(parsed) == 7 and parsed[5]["stalls"]["long_sb"] == 20
    assert regions.innermost_loops(parsed, min_mufu=2) == [(base + 0x10, base + 0x40)]
    assert regions.innermost_loops(parsed, min_mufu=3) == []
    text = regions.summarize(parsed, token_warps=10, min_mufu=2, blocks=3)
    assert "executed 430 warp instructions    43.0/tw; 50 stall samples" in text
    assert "token loops (1):  93.0% of instructions    40.0/tw,  58.0% of samples" in text
    assert "stalls outside:      long_sb 100%" in text  # the only reason sampled outside the loop
    assert "FADD.FTZ" in text


def test_a_file_that_is_not_a_source_page_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('"ID","Kernel Name"\n"0","k"\n')
    assert regions.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no 'Address' header row" in err
    assert regions.main([str(tmp_path / "missing.csv")]) == 2
