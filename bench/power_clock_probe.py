"""SM clock, power and clock-limit reasons while a model runs alone and back to back (GPU; issue 11).

Why: `vim-deploy bench` reports vim_base at batch 128 ~6.5% slower a batch back to back (img/s) than run
alone (p50 latency); the smaller models do not show it. If the card lowers its clock under the sustained
load (power or thermal limit), that is a property of the load's energy, not of launch overlap. This runs
each model's CUDA-graphed fast path in four phases with the bench's own timers (20 runs alone, 20 back to
back, --seconds back to back, 20 alone again) while `nvidia-smi` samples the card every 50 ms, and reports
per phase: ms a batch, mean SM clock, mean power (the driver's reading lags: short phases under-read it),
and the clock-limit reasons that were active. H200, 2026-12-01: vim_base back to back holds the 700 W cap
and the SM clock drops ~10% (bench/RESULTS.md).

    python bench/power_clock_probe.py --models vim_base,vim_tiny --batch 128 --seconds 6 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vim_deploy import cublas_workspace  # noqa: E402
from vim_deploy.bench.backends import make_backend  # noqa: E402
from vim_deploy.bench.runner import _time_back_to_back, _time_runs  # noqa: E402  (the bench's timers)

FIELDS = ("timestamp", "clocks.sm", "power.draw", "temperature.gpu", "clocks_event_reasons.active")


def smi_fields() -> tuple[str, ...]:
    """FIELDS, with the older name of the limit-reason field where the driver lacks the new one."""
    probe = subprocess.run(["nvidia-smi", "--query-gpu=" + ",".join(FIELDS), "--format=csv,noheader"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return FIELDS
    return FIELDS[:-1] + ("clocks_throttle_reasons.active",)


def sample_log(fields, path):
    return subprocess.Popen(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits",
                             "-lms", "50"], stdout=open(path, "w"), stderr=subprocess.DEVNULL)


def read_samples(path):
    rows = []
    for line in open(path):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        try:
            t = time.mktime(time.strptime(parts[0].split(".")[0], "%Y/%m/%d %H:%M:%S"))
            t += float("0." + parts[0].split(".")[1]) if "." in parts[0] else 0.0
            rows.append({"t": t, "sm_mhz": float(parts[1]), "watts": float(parts[2]), "temp_c": float(parts[3]),
                         "reasons": int(parts[4], 16)})
        except ValueError:
            continue
    return rows


REASONS = {0x1: "idle", 0x2: "app clocks", 0x4: "sw power cap", 0x8: "hw slowdown", 0x20: "sw thermal",
           0x40: "hw thermal", 0x80: "hw power brake", 0x100: "display clocks"}


def summarize(rows, t0, t1):
    sel = [r for r in rows if t0 <= r["t"] <= t1]
    if not sel:
        return {"samples": 0}
    mask = 0
    for r in sel:
        mask |= r["reasons"]
    return {"samples": len(sel), "sm_mhz_mean": sum(r["sm_mhz"] for r in sel) / len(sel),
            "sm_mhz_min": min(r["sm_mhz"] for r in sel), "watts_mean": sum(r["watts"] for r in sel) / len(sel),
            "watts_max": max(r["watts"] for r in sel), "temp_c_max": max(r["temp_c"] for r in sel),
            "reasons": [name for bit, name in REASONS.items() if mask & bit]}


def alone(be, n):
    """Median ms a batch, each run alone: the bench's own latency timer."""
    return statistics.median(_time_runs(be, 0, n, True))


def back_to_back(be, n):
    """Mean ms a batch over n runs issued back to back: the bench's own throughput timer."""
    return _time_back_to_back(be, n, True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vim_base,vim_tiny")
    ap.add_argument("--backend", default="fastpath-fp16")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=6.0, help="length of the long back-to-back phase")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("power_clock_probe: needs a CUDA GPU")
    cublas_workspace.prefer_no_workspace()  # as the vim-deploy command line does
    fields = smi_fields()
    log = tempfile.NamedTemporaryFile(suffix=".csv", delete=False).name
    proc = sample_log(fields, log)
    time.sleep(1.0)
    report = {"device": torch.cuda.get_device_name(), "fields": fields, "batch": args.batch, "res": args.res,
              "models": {}}
    marks = []
    try:
        for model in args.models.split(","):
            be = make_backend(args.backend, model, None, "cuda")
            be.prepare(args.batch, args.res)
            for _ in range(5):
                be.run()
            torch.cuda.synchronize()
            time.sleep(2.0)  # idle: let the clock and power settle between models
            phases = {}
            t = time.time()
            ms = alone(be, 20)
            phases["alone_20"] = (t, time.time(), ms)
            t = time.time()
            ms = back_to_back(be, 20)
            phases["back_to_back_20"] = (t, time.time(), ms)
            n = max(20, int(args.seconds * 1e3 / max(ms, 0.1)))
            t = time.time()
            ms = back_to_back(be, n)
            phases[f"back_to_back_{n}"] = (t, time.time(), ms)
            t = time.time()
            ms = alone(be, 20)
            phases["alone_20_after"] = (t, time.time(), ms)
            be.release()
            marks.append((model, phases))
            time.sleep(1.0)
    finally:
        time.sleep(0.3)
        proc.terminate()
        proc.wait()
    rows = read_samples(log)
    os.unlink(log)
    lines = [f"# SM clock and power by phase ({report['device']}, {args.backend}, batch {args.batch} @ {args.res})", "",
             "| model | phase | ms a batch | SM MHz mean (min) | W mean (max) | max °C | limit reasons |",
             "|---|---|---|---|---|---|---|"]
    for model, phases in marks:
        report["models"][model] = {}
        for name, (t0, t1, ms) in phases.items():
            s = summarize(rows, t0, t1)
            report["models"][model][name] = {"ms": ms, **s}
            if s["samples"]:
                lines.append(f"| {model} | {name} | {ms:.3f} | {s['sm_mhz_mean']:.0f} ({s['sm_mhz_min']:.0f}) | "
                             f"{s['watts_mean']:.0f} ({s['watts_max']:.0f}) | {s['temp_c_max']:.0f} | "
                             f"{', '.join(s['reasons']) or '-'} |")
            else:
                lines.append(f"| {model} | {name} | {ms:.3f} | (no samples) | | | |")
    md = "\n".join(lines) + "\n"
    print(md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "power_clock.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "power_clock.md"), "w") as f:
        f.write(md)


if __name__ == "__main__":
    main()
