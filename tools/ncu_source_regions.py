"""Where a kernel's instructions and stalls go, from an Nsight Compute source-page CSV (no GPU needed).

`bench/profile_scan_source.sh` saves, per case, ncu's per-SASS-instruction table (`ncu -i rep --page
source --csv --print-source sass`): executed instructions and warp-stall samples by reason for every
instruction. This charges them to regions: each innermost loop that holds MUFU.EX2 (the token loops),
and the straight-line code between them (tile copies, B/C staging, y stores, set-up), so that a kernel
change can aim at the part that costs.

    python tools/ncu_source_regions.py src_small_b128_p1.csv.gz [--token-warps 1209600] [--blocks 12]
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sass_loops import loops, opcode  # noqa: E402  (the SASS text helpers beside this tool)


def read_rows(path: str) -> list[dict]:
    """Rows of the source page: address, text, executed, samples, {stall reason: samples}."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        table = list(csv.reader(f))
    header_at = next((i for i, r in enumerate(table) if r and r[0] == "Address"), None)
    if header_at is None:
        raise ValueError(f"{path}: no 'Address' header row (not an ncu source-page CSV)")
    header = table[header_at]
    col = {h: i for i, h in enumerate(header)}
    for need in ("Source", "Instructions Executed", "Warp Stall Sampling (All Samples)"):
        if need not in col:
            raise ValueError(f"{path}: column {need!r} missing")
    stalls = [h for h in header if h.startswith("stall_") and "(Not Issued)" not in h]
    rows = []
    for r in table[header_at + 1:]:
        if len(r) != len(header) or not r[0].startswith("0x"):
            continue
        num = lambda h: int(float(r[col[h]] or 0)) if r[col[h]] not in ("-", "") else 0  # noqa: E731
        rows.append({"addr": int(r[0], 16), "text": r[col["Source"]].strip(),
                     "executed": num("Instructions Executed"),
                     "samples": num("Warp Stall Sampling (All Samples)"),
                     "stalls": {h[6:]: num(h) for h in stalls}})
    if not rows:
        raise ValueError(f"{path}: no instruction rows")
    return rows


def innermost_loops(rows: list[dict], min_mufu: int) -> list[tuple[int, int]]:
    """(start, end) address ranges of backward branches holding >= min_mufu MUFU.EX2 and no such loop inside."""
    found = [(lp["start"], lp["end"]) for lp in loops([(r["addr"], r["text"]) for r in rows], min_mufu)]
    inner = [a for a in found if not any(b != a and a[0] <= b[0] and b[1] <= a[1] for b in found)]
    return sorted(set(inner))


def summarize(rows: list[dict], token_warps: float | None, min_mufu: int, blocks: int) -> str:
    total_x = sum(r["executed"] for r in rows)
    total_s = sum(r["samples"] for r in rows) or 1
    per = (lambda x: f"{x / token_warps:7.1f}/tw") if token_warps else (lambda x: "")
    out = [f"executed {total_x:,} warp instructions {per(total_x)}; {total_s:,} stall samples"]
    loops = innermost_loops(rows, min_mufu)
    in_loop = set()
    lx = ls = 0
    reasons_loop: collections.Counter = collections.Counter()
    for start, end in loops:
        body = [r for r in rows if start <= r["addr"] <= end]
        in_loop.update(r["addr"] for r in body)
        x = sum(r["executed"] for r in body)
        s = sum(r["samples"] for r in body)
        lx += x
        ls += s
        for r in body:
            reasons_loop.update(r["stalls"])
    rest = [r for r in rows if r["addr"] not in in_loop]
    out.append(f"token loops ({len(loops)}): {lx / max(total_x, 1):6.1%} of instructions {per(lx)}, "
               f"{ls / total_s:6.1%} of samples")
    out.append(f"outside them:      {1 - lx / max(total_x, 1):6.1%} of instructions {per(total_x - lx)}, "
               f"{1 - ls / total_s:6.1%} of samples")

    def top_reasons(counter: collections.Counter, n: int = 6) -> str:
        tot = sum(counter.values()) or 1
        return ", ".join(f"{k} {v / tot:.0%}" for k, v in counter.most_common(n) if v)

    out.append("  stalls in the loops: " + top_reasons(reasons_loop))
    reasons_rest: collections.Counter = collections.Counter()
    for r in rest:
        reasons_rest.update(r["stalls"])
    out.append("  stalls outside:      " + top_reasons(reasons_rest))
    ops_x: collections.Counter = collections.Counter()
    ops_s: collections.Counter = collections.Counter()
    for r in rest:
        ops_x[opcode(r["text"])] += r["executed"]
        ops_s[opcode(r["text"])] += r["samples"]
    out.append("  outside, by opcode (instructions): " + ", ".join(
        f"{k} {v / max(total_x, 1):.1%}" for k, v in ops_x.most_common(12)))
    out.append("  outside, by opcode (samples):      " + ", ".join(
        f"{k} {v / total_s:.1%}" for k, v in ops_s.most_common(12)))
    # Straight-line runs outside the loops, cut at branches and at changes of execution count.
    runs, cur = [], []
    for r in rest:
        if cur and (r["executed"] != cur[-1]["executed"] or r["addr"] - cur[-1]["addr"] > 16):
            runs.append(cur)
            cur = []
        cur.append(r)
    if cur:
        runs.append(cur)
    runs.sort(key=lambda run: -sum(r["samples"] for r in run))
    out.append(f"  heaviest straight-line runs outside the loops (by samples, top {blocks}):")
    base = rows[0]["addr"]
    for run in runs[:blocks]:
        x = sum(r["executed"] for r in run)
        s = sum(r["samples"] for r in run)
        mix = collections.Counter(opcode(r["text"]) for r in run).most_common(4)
        out.append(f"    +0x{run[0]['addr'] - base:05x}..+0x{run[-1]['addr'] - base:05x} {len(run):3d} instr x "
                   f"{run[0]['executed']:>9,}: {x / max(total_x, 1):5.1%} instr {s / total_s:5.1%} samples "
                   f"[{', '.join(f'{k} {v}' for k, v in mix)}]")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="ncu source-page CSV(s), optionally gzipped")
    ap.add_argument("--token-warps", type=float, help="token x channel x direction / 32: per-token-warp figures")
    ap.add_argument("--min-mufu", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=10)
    args = ap.parse_args(argv)
    for path in args.csv:
        try:
            rows = read_rows(path)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"== {path}")
        print(summarize(rows, args.token_warps, args.min_mufu, args.blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
