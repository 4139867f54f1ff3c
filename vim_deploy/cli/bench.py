"""`vim-deploy bench`: throughput / latency / memory over backends, batches and resolutions."""

from __future__ import annotations

import os
import sys

import click

from vim_deploy import log
from vim_deploy.cli.options import logging_options
from vim_deploy.bench import BenchConfig, run_bench
from vim_deploy.bench.report import to_markdown, write_all
from vim_deploy.bench.runner import PAPER_RESOLUTIONS
from vim_deploy.errors import VimDeployError


def _ints(ctx, param, value: str):
    if value == "paper":
        return list(PAPER_RESOLUTIONS)
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("comma-separated integers, e.g. 1,8,128") from None
    if not out or min(out) < 1:
        raise click.BadParameter("comma-separated positive integers, e.g. 1,8,128")
    return out


class _Bar:
    """A one-line progress bar on stderr (plain lines when not a terminal)."""

    def __call__(self, i, n, what):
        msg = f"[{i:>3}/{n}] {what}"
        if sys.stderr.isatty():
            width = 24
            done = int(width * (i - 1) / n)
            click.echo(f"\r[{'#' * done}{'.' * (width - done)}] {msg:<60}", err=True, nl=(i == n))
        else:
            log.info(msg)


@click.command("bench")
@click.option("--model", "-m", default="vim_tiny", show_default=True)
@click.option("--checkpoint", "-c", default=None, help="Weights (speed does not depend on them; seeded if absent).")
@click.option("--backends", default="pytorch-fp32,pytorch-fp16", show_default=True,
              help="Comma-separated <runtime>-<precision>[-<form>]: pytorch-fp32, pytorch-fp16, fastpath-fp16 (our CUDA "
                   "kernels + CUDA graph), onnxruntime-<fp32|fp16>[-<form>] (the graph `export --form <form>` writes, "
                   "default plain, on onnxruntime: plugin forms with libvim_ort_ops.so, CUDA provider + I/O binding + "
                   "ORT CUDA graph on a GPU; forms: plain, fused, function, portable, ort-optimized; 'onnxruntime' = "
                   "onnxruntime-fp32-portable), official-fp16 (hustvl/Vim's code on mamba_ssm's kernels; needs "
                   "--upstream), tensorrt (needs --engine), deit_<tiny|small|base>-<math|sdpa>[-fp16][-graph] (needs "
                   "timm; -graph: replayed as a CUDA graph).")
@click.option("--engine", default=None, help="TensorRT plan for the tensorrt backend (from `vim-deploy build`).")
@click.option("--plugins", "--plugin", "plugin", default=None, help="Plugin library the engine needs (libvim_trt_plugin.so).")
@click.option("--ort-ops-library", default=None, type=click.Path(dir_okay=False),
              help="libvim_ort_ops.so for the onnxruntime-* plugin-form backends [default: $VIM_DEPLOY_ORT_OPS_LIB, then build/].")
@click.option("--upstream", default=None, envvar="VIM_DEPLOY_UPSTREAM",
              help="hustvl/Vim checkout for the official-fp16 backend (or $VIM_DEPLOY_UPSTREAM).")
@click.option("--batch", "batches", default="1,8", show_default=True, callback=_ints, help="Batch sizes.")
@click.option("--resolutions", default="224", show_default=True, callback=_ints,
              help="Resolutions, or 'paper' for 224,512,640,736,1024,1248 (the paper's 738 does not fit a 16-px patch grid).")
@click.option("--warmup", default=3, show_default=True, type=int)
@click.option("--iters", default=20, show_default=True, type=int,
              help="Timed runs: each alone for the latency percentiles, then as many back to back for img/s.")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Time the whole sweep this many times, every other round in the reverse order; img/s is the "
                   "median round's (each round's in the JSON), latency percentiles pool all rounds.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--out-dir", default="bench_out", show_default=True, help="Folder for bench.{json,csv,md,png}.")
@logging_options
def bench_cmd(model, checkpoint, backends, engine, plugin, ort_ops_library, upstream, batches, resolutions, warmup, iters,
              rounds, device, out_dir):
    """Benchmark Vim backends (and DeiT baselines) over batch sizes and resolutions."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise VimDeployError(f"--out-dir '{out_dir}' exists and is not a folder.")
    cfg = BenchConfig(model=model, checkpoint=checkpoint, backends=[b.strip() for b in backends.split(",") if b.strip()],
                      batches=batches, resolutions=resolutions, warmup=warmup, iters=iters, rounds=rounds, device=device,
                      engine=engine, plugin=plugin, upstream=upstream, ort_ops_library=ort_ops_library)
    log.info(f"RUNNING | bench {model}: {', '.join(cfg.backends)} x res {resolutions} x batch {batches}")
    report = run_bench(cfg, progress=_Bar())
    files = write_all(report, out_dir)
    click.echo(to_markdown(report))
    bad = [r for r in report["rows"] if r["status"] == "error"]
    log.passed(f"wrote {', '.join(files)}")
    if bad and len(bad) == len(report["rows"]):
        raise VimDeployError(f"every configuration failed (first: {bad[0].get('error', 'error')}).",
                             f"The report in {out_dir} has each row's error.")
    if bad:
        log.warning(f"{len(bad)} configuration(s) failed; see the status column.")
