"""Is a packed half-precision exp2 (``ex2.approx.f16x2`` / ``ex2.approx.ftz.bf16x2``) worth it for the scan?

Issue 11 lists packed 16-bit exp2 for the per-state decays as a lever, "only if the whole-model error stays
inside the fp16 tolerance" and "check the SASS: the compiler may split it into two fp32 MUFU ops". This
tool answers both questions without a GPU:

* ``--sass``: compiles a probe kernel of both PTX instructions for each ``--arch`` with nvcc and counts,
  in cuobjdump's SASS, the MUFU instructions one packed instruction becomes (one = a packed unit; two =
  split, so no fewer MUFU operations than fp32 exp2).
* the error (always): a selective scan in float64 on fresh random inputs shaped like Vim's (A = -(1..N)
  as Vim initialises ``A_log``, delta = softplus(x + bias) with the bias drawn as Vim's ``dt_proj`` init,
  0.001..0.1), once with exact decays and once with each decay ``2^(delta * A * log2 e)`` rounded the way
  a 16-bit exp2 must round it at best (its input and its output correctly rounded to the 16-bit type;
  the hardware's approximation can only add to that). Everything else stays float64, so the printed
  relative L2 error of y is the decay rounding's own share, to set beside the kernel's fp16 tolerance
  (2e-3 relative L2 in ``tests/gpu``).

    python tools/packed_ex2_check.py --sass --arch sm_90 --arch sm_100a      # needs nvcc + cuobjdump
    python tools/packed_ex2_check.py --lengths 197 6085

Exit status 0 either way; a missing tool or a bad argument is a one-line error and status 2.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sass_loops import opcode, parse_functions  # noqa: E402  (the SASS text helpers beside this tool)

PROBE = r"""
extern "C" __global__ void packedF16(unsigned const* x, unsigned* y)
{
    unsigned r;
    asm("ex2.approx.f16x2 %0, %1;" : "=r"(r) : "r"(x[threadIdx.x]));
    y[threadIdx.x] = r;
}
extern "C" __global__ void packedBf16(unsigned const* x, unsigned* y)
{
    unsigned r;
    asm("ex2.approx.ftz.bf16x2 %0, %1;" : "=r"(r) : "r"(x[threadIdx.x]));
    y[threadIdx.x] = r;
}
"""


def mufu_per_packed_op(arch: str, nvcc: str, cuobjdump: str) -> dict[str, list[str]]:
    """The MUFU instructions each probe kernel (one packed ex2) compiles to for ``arch``."""
    with tempfile.TemporaryDirectory() as tmp:
        src, cubin = os.path.join(tmp, "probe.cu"), os.path.join(tmp, "probe.cubin")
        with open(src, "w") as f:
            f.write(PROBE)
        subprocess.run([nvcc, f"-arch={arch}", "-O3", "-cubin", "-o", cubin, src], check=True,
                       capture_output=True, text=True)
        sass = subprocess.run([cuobjdump, "-sass", cubin], check=True, capture_output=True, text=True).stdout
    return mufu_by_kernel(sass)


def mufu_by_kernel(sass: str) -> dict[str, list[str]]:
    """cuobjdump -sass text -> the MUFU instructions of each kernel."""
    return {name: [text for _, text in instrs if opcode(text).startswith("MUFU")]
            for name, instrs in parse_functions(sass).items()}


def decay_error(length: int, channels: int, dstate: int, dtype: str, seed: int) -> float:
    """Relative L2 error of y from 16-bit-rounded decays alone (everything else float64)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    low = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    a = -torch.arange(1, dstate + 1, dtype=f64).repeat(channels, 1)  # Vim's A = -exp(A_log) at init
    dt0 = torch.exp(torch.rand(channels, generator=g, dtype=f64) * (math.log(0.1) - math.log(0.001))
                    + math.log(0.001))
    bias = dt0 + torch.log(-torch.expm1(-dt0))  # inverse softplus, as Vim's dt_proj bias init
    x = torch.randn(length, channels, generator=g, dtype=f64) * 0.5
    dt = torch.nn.functional.softplus(x + bias)
    u = torch.randn(length, channels, generator=g, dtype=f64)
    b = torch.randn(length, dstate, generator=g, dtype=f64)
    c = torch.randn(length, dstate, generator=g, dtype=f64)
    h_exact = torch.zeros(channels, dstate, dtype=f64)
    h_low = torch.zeros(channels, dstate, dtype=f64)
    y_exact = torch.empty(length, channels, dtype=f64)
    y_low = torch.empty(length, channels, dtype=f64)
    log2e = 1.0 / math.log(2.0)
    for t in range(length):
        x2 = dt[t, :, None] * a * log2e
        exact = torch.exp2(x2)
        rounded = torch.exp2(x2.to(low).to(f64)).to(low).to(f64)  # best case of a 16-bit exp2
        drive = (dt[t] * u[t])[:, None] * b[t]
        h_exact = exact * h_exact + drive
        h_low = rounded * h_low + drive
        y_exact[t] = h_exact @ c[t]
        y_low[t] = h_low @ c[t]
    return ((y_low - y_exact).norm() / y_exact.norm()).item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sass", action="store_true", help="also compile the probe and count its MUFU instructions")
    p.add_argument("--arch", action="append", help="GPU architecture(s) for --sass (default sm_90)")
    p.add_argument("--lengths", type=int, nargs="+", default=[197, 6085], help="sequence lengths to simulate")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--dstate", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if any(n < 1 for n in args.lengths) or args.channels < 1 or args.dstate < 1:
        print("error: --lengths, --channels and --dstate must be positive", file=sys.stderr)
        return 2
    if args.sass:
        nvcc = shutil.which("nvcc")
        cuobjdump = os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump")
        if not nvcc or not cuobjdump:
            print("error: --sass needs nvcc and cuobjdump on PATH (or CUOBJDUMP=<path>); "
                  "pip download nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm give them", file=sys.stderr)
            return 2
        for arch in args.arch or ["sm_90"]:
            try:
                found = mufu_per_packed_op(arch, nvcc, cuobjdump)
            except subprocess.CalledProcessError as e:
                print(f"error: {arch}: {' '.join(map(str, e.cmd[:1]))} failed: "
                      f"{(e.stderr or '').strip().splitlines()[-1:] or ['?']}", file=sys.stderr)
                return 2
            for kernel, mufu in found.items():
                print(f"{arch} {kernel}: {len(mufu)} MUFU per packed ex2 ({'; '.join(mufu)})")
    print("| L | decays rounded to | rel L2 error of y (decays only; fp16 kernel tolerance 2e-3) |")
    print("|---|---|---|")
    for length in args.lengths:
        for dtype in ("fp16", "bf16"):
            err = decay_error(length, args.channels, args.dstate, dtype, args.seed)
            print(f"| {length} | {dtype} | {err:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
