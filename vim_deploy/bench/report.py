"""Benchmark outputs: CSV and JSON (machines), Markdown (people), PNG plots (fps and memory vs
resolution on log axes, as in the Vim paper's figure)."""

from __future__ import annotations

import csv
import io
import math
import os

from vim_deploy import log
from vim_deploy.io_utils import dumps_json, atomic_write_bytes, atomic_write_text

COLUMNS = ("backend", "model", "resolution", "batch", "device", "status", "img_per_s", "img_per_s_at_p50",
           "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "peak_mem_gb", "speedup_vs_baseline", "error")


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in report["rows"]:
        w.writerow({k: r.get(k, "") if r.get(k) is not None else "" for k in COLUMNS})
    return buf.getvalue()


def _fmt(v, spec):
    return "—" if v is None or v == "" else format(v, spec)


# The baseline a row's speed-up is given against, in order of preference: the code users run today
# (hustvl/Vim on mamba_ssm), else our PyTorch reference model.
BASELINES = ("official-fp16", "pytorch-fp16", "pytorch-fp32")


def speedups(report: dict) -> tuple[str | None, dict[int, float]]:
    """(baseline backend, {row index: img/s over the baseline's img/s at the same resolution and batch}),
    from rows of the same run only."""
    ok = [r for r in report["rows"] if r["status"] == "ok" and r.get("img_per_s")]
    present = {r["backend"] for r in ok}
    base = next((b for b in BASELINES if b in present), None)
    if base is None:
        return None, {}
    ref = {(r["resolution"], r["batch"]): r["img_per_s"] for r in ok if r["backend"] == base}
    out = {}
    for i, r in enumerate(report["rows"]):
        key = (r["resolution"], r["batch"])
        if r["status"] == "ok" and r.get("img_per_s") and key in ref:
            out[i] = r["img_per_s"] / ref[key]
    return base, out


def to_markdown(report: dict) -> str:
    # the ratios the sweep stored (runner.run_bench); reports from elsewhere get them computed here
    if "baseline" in report:
        base = report["baseline"]
        ratio = {i: r["speedup_vs_baseline"] for i, r in enumerate(report["rows"]) if "speedup_vs_baseline" in r}
    else:
        base, ratio = speedups(report)
    extra_head = f" x {base} |" if base else ""
    lines = [f"# vim-deploy bench: {report['config']['model']} on {report['device']}", "",
             f"{report['date']}; {report['tool']}; torch {report['torch']}; warm-up {report['config']['warmup']}, "
             f"{report['config']['iters']} timed runs"
             + (f" in each of {report['config']['rounds']} rounds (every other round in the reverse order; img/s the "
                "median round's)" if report['config'].get("rounds", 1) > 1 else "")
             + (f"; cuBLAS workspace: {report['cublas_workspace']}" if report.get("cublas_workspace") else "")
             + (f"; speed-ups against {base} measured in this run" if base else ""), "",
             "img/s: the timed runs issued back to back (throughput, as trtexec reports it); p50 / p90 / p99: "
             "the latency of each run alone" + ("; speed-ups from img/s" if base else "") + ".", "",
             "| backend | resolution | batch | img/s | p50 ms | p90 ms | p99 ms | peak GB |" + extra_head + " status |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if base else "") + "---|"]
    for i, r in enumerate(report["rows"]):
        cell = f" {_fmt(ratio.get(i), '.2f')} |" if base else ""
        lines.append(f"| {r['backend']} | {r['resolution']} | {r['batch']} | {_fmt(r.get('img_per_s'), '.1f')} | "
                     f"{_fmt(r.get('latency_ms_p50'), '.2f')} | {_fmt(r.get('latency_ms_p90'), '.2f')} | "
                     f"{_fmt(r.get('latency_ms_p99'), '.2f')} | {_fmt(r.get('peak_mem_gb'), '.2f')} |{cell} "
                     f"{r['status']}{': ' + r['error'] if r.get('error') else ''} |")
    untracked = sorted({r["backend"] for r in report["rows"]
                        if r["status"] == "ok" and r.get("device") == "cuda" and r.get("peak_mem_gb") is None})
    if untracked:
        lines += ["", f"Peak GB not measured for {', '.join(untracked)}: it allocates GPU memory outside PyTorch."]
    notes = sorted({f"{r['backend']}: {r['note']}" for r in report["rows"] if r.get("note")})
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot_png(report: dict) -> bytes | None:
    """Throughput (and, where measured, peak GPU memory) per backend and batch; None without matplotlib.

    Several resolutions: a line a (backend, batch) over resolution. One resolution: horizontal bars, each
    labelled with its value. Peak memory gets its own panel only when some row measured it (GPU runs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        log.warning("matplotlib is not installed: no PNG plot (install the plots extra: pip install 'vim-deploy[plots]').")
        return None
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    keys = [("img_per_s", "throughput (img/s)")]
    if any(r.get("peak_mem_gb") is not None for r in ok):
        keys.append(("peak_mem_gb", "peak GPU memory (GB)"))
    resolutions = sorted({r["resolution"] for r in report["rows"]})
    series_names = sorted({(r["backend"], r["batch"]) for r in ok}, key=lambda k: (k[1], k[0]))
    one_res = len(resolutions) == 1
    height = 4.2 if not one_res else max(2.6, 0.42 * len(series_names) + 1.4)
    fig, axes = plt.subplots(1, len(keys), figsize=(6.2 * len(keys) + (2.8 if not one_res else 0), height),
                             squeeze=False)
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:.3g}")
    for ax, (key, label) in zip(axes[0], keys):
        values = {(r["backend"], r["batch"], r["resolution"]): r[key] for r in ok
                  if r.get(key) is not None and math.isfinite(r[key])}  # a NaN / inf row has no point to draw
        if not values:
            ax.text(0.5, 0.5, "no successful run", ha="center", va="center", transform=ax.transAxes, color="gray")
            ax.set_axis_off()
            continue
        spread = max(values.values()) / max(min(values.values()), 1e-12)
        if one_res:
            names = [k for k in series_names if (*k, resolutions[0]) in values]
            ys = range(len(names))
            vals = [values[(*k, resolutions[0])] for k in names]
            ax.barh(list(ys), vals, color=[f"C{i % 10}" for i in ys])
            ax.set_yticks(list(ys), [f"{be}, batch {b}" for be, b in names])
            ax.invert_yaxis()
            for y, v in zip(ys, vals):
                ax.text(v, y, f" {v:,.1f}" if v < 100 else f" {v:,.0f}", va="center", fontsize=8)
            ax.set_xlabel(f"{label} at {resolutions[0]} px")
            ax.set_xlim(0, max(vals) * 1.18)
            ax.grid(True, axis="x", alpha=0.3)
        else:
            for i, (be, b) in enumerate(series_names):
                pts = sorted((res, v) for (be2, b2, res), v in values.items() if (be2, b2) == (be, b))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{i % 10}",
                            label=f"{be}, batch {b}")
            ax.set_xticks(resolutions, [str(r) for r in resolutions])
            ax.set_xlabel("resolution (px)")
            ax.set_ylabel(label)
            if spread > 20:
                ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            ax.grid(True, which="major", alpha=0.3)
            for r in report["rows"]:
                if r["status"] == "OOM" and key == "img_per_s":
                    ax.annotate("OOM", (r["resolution"], min(values.values())), fontsize=7, color="red")
    if not one_res:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"{report['config']['model']} on {report['device']}", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_all(report: dict, out_dir: str, stem: str = "bench") -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for ext, data in (("json", dumps_json(report)), ("csv", to_csv(report)), ("md", to_markdown(report))):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        atomic_write_text(path, data)
        written.append(path)
    png = plot_png(report)
    if png:
        path = os.path.join(out_dir, f"{stem}.png")
        atomic_write_bytes(path, png)
        written.append(path)
    return written
