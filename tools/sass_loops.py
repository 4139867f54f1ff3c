"""Instruction mix of the hot loops of a built kernel library, read from its SASS (no GPU needed).

A kernel change's cost shows in its token loop before any device time is spent: how many instructions
a loop body issues, how many of them are MUFU operations, shared-memory loads, shuffles. This lists
every loop (a backward branch) of the matching kernels that holds at least --min-mufu MUFU.EX2.

    python tools/sass_loops.py build/libvim_kernels.so                      # fp16, 16 states, 1 lane, pass B
    python tools/sass_loops.py build/variants/x/libvim_kernels.so --kernel 'I6__halfLi8ELi2ELb1'

Needs cuobjdump (CUDA toolkit, or the nvidia-cuda-cuobjdump wheel; CUOBJDUMP=<path> to point at it).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

INSTR = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
TARGET = re.compile(r"0x([0-9a-f]+)")


def parse_functions(sass: str) -> dict[str, list[tuple[int, str]]]:
    """{function name: [(address, instruction text)]} from `cuobjdump -sass` output."""
    funcs: dict[str, list[tuple[int, str]]] = {}
    name = None
    for line in sass.splitlines():
        if "Function :" in line:
            name = line.split("Function :", 1)[1].strip()
            funcs[name] = []
            continue
        m = INSTR.match(line)
        if m and name is not None:
            funcs[name].append((int(m.group(1), 16), m.group(2)))
    return funcs


def opcode(text: str) -> str:
    """The opcode of one instruction, without its predicate (`@!P0 BRA ...` -> `BRA`); '' for no text."""
    parts = re.sub(r"^@!?U?P\w+\s+", "", text.strip()).split()
    return parts[0] if parts else ""


def loops(instrs: list[tuple[int, str]], min_mufu: int = 16) -> list[dict]:
    """Loops (backward branches) of one function holding at least min_mufu MUFU.EX2, innermost first."""
    found = []
    for addr, text in instrs:
        if opcode(text) != "BRA":
            continue
        m = TARGET.search(text)
        if not m or int(m.group(1), 16) >= addr:
            continue
        start = int(m.group(1), 16)
        body = [t for a, t in instrs if start <= a <= addr]
        mix = collections.Counter(opcode(t) for t in body)
        if mix["MUFU.EX2"] >= min_mufu:
            found.append({"start": start, "end": addr, "instructions": len(body), "mix": mix})
    return sorted(found, key=lambda r: r["instructions"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("library", help="a built .so (or .cubin)")
    ap.add_argument("--kernel", default="selectiveScanKernelI6__halfLi16ELi1ELb1",
                    help="substring of the mangled kernel name (default: fp16, 16 states, 1 lane, output pass)")
    ap.add_argument("--min-mufu", type=int, default=16)
    ap.add_argument("--top", type=int, default=12, help="opcodes shown a loop")
    args = ap.parse_args(argv)
    tool = os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump")
    if not tool:
        print("error: cuobjdump not found: install the CUDA toolkit or `pip download nvidia-cuda-cuobjdump`, "
              "or set CUOBJDUMP=<path>", file=sys.stderr)
        return 2
    if not os.path.isfile(args.library):
        print(f"error: {args.library}: no such file", file=sys.stderr)
        return 2
    res = subprocess.run([tool, "-sass", args.library], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"error: cuobjdump failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}",
              file=sys.stderr)
        return 2
    funcs = {n: i for n, i in parse_functions(res.stdout).items() if args.kernel in n}
    if not funcs:
        print(f"error: no kernel matching {args.kernel!r} in {args.library}", file=sys.stderr)
        return 2
    for name, instrs in funcs.items():
        print(f"{name}: {len(instrs)} instructions")
        for r in loops(instrs, args.min_mufu):
            mix = ", ".join(f"{k} {v}" for k, v in r["mix"].most_common(args.top))
            print(f"  loop {r['start']:#x}-{r['end']:#x}: {r['instructions']} instructions, "
                  f"{r['mix']['MUFU.EX2']} MUFU.EX2: {mix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
