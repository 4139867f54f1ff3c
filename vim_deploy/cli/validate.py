"""`vim-deploy validate`: accuracy parity of exported graphs against the PyTorch reference."""

from __future__ import annotations

import click

from vim_deploy import log
from vim_deploy.cli.options import Progress, logging_options
from vim_deploy.io_utils import check_writable
from vim_deploy.validate import ValidateConfig, run_validation, to_markdown, write_reports


@click.command("validate")
@click.option("--onnx", "onnx_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Graph(s) written by `vim-deploy export` (repeatable). Without it, the plugin and the "
                   "portable graph of --model are exported to a temporary folder and both validated.")
@click.option("--engine", "engines", multiple=True, type=click.Path(dir_okay=False),
              help="TensorRT plan from `vim-deploy build` (repeatable; its <plan>.json names the model and weights). "
                   "UNVERIFIED: engine execution has not been run on a GPU by this project yet.")
@click.option("--plugins", "--plugin", "plugin", default=None, help="libvim_trt_plugin.so to load for --engine [default: ./build].")
@click.option("--runtime", type=click.Choice(["auto", "onnxruntime", "reference"]), default="auto", show_default=True,
              help="Runtime of plugin graphs: onnxruntime with libvim_ort_ops.so ('auto': when it is built), or "
                   "onnx's reference evaluator with the NumPy scan op (slow oracle).")
@click.option("--ort-provider", type=click.Choice(["cpu", "cuda"]), default=None,
              help="onnxruntime execution provider [default: cpu for plugin graphs, cuda when available otherwise].")
@click.option("--ort-ops-library", default=None, type=click.Path(dir_okay=False),
              help="libvim_ort_ops.so [default: $VIM_DEPLOY_ORT_OPS_LIB, then build/].")
@click.option("--model", "-m", default=None, help="Model when exporting on the fly [default: vim_tiny]; "
              "with --onnx it is read from the graph and only checked.")
@click.option("--checkpoint", "-c", default=None, help="Checkpoint the graph was exported from.")
@click.option("--ema", "use_ema", is_flag=True, help="Use the checkpoint's 'model_ema' entry.")
@click.option("--unsafe-load", is_flag=True, help="Allow full pickle when reading the checkpoint.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Precision of graphs exported on the fly (with --onnx it is read from the graph).")
@click.option("--num-random", type=int, default=8, show_default=True, help="Random input images.")
@click.option("--images", default=None, help="Folder of real images (official preprocessing), or 'skimage' "
              "for scikit-image's bundled photos.")
@click.option("--batch-size", "--batch", "batch_size", type=int, default=4, show_default=True,
              help="Images per inference call.")
@click.option("--seed", type=int, default=1234, show_default=True, help="Seed of the random inputs.")
@click.option("--min-cosine", type=click.FloatRange(-1.0, 1.0), default=None, help="Override the per-precision cosine threshold.")
@click.option("--min-top1", type=click.FloatRange(0.0, 1.0), default=None, help="Override the per-precision top-1 agreement threshold (0..1).")
@click.option("--max-rel-l2", type=click.FloatRange(min=0.0), default=None, help="Override the per-precision relative L2 threshold.")
@click.option("--report-json", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
@click.option("--report-md", type=click.Path(dir_okay=False), default=None, help="Write the report as Markdown.")
@logging_options
def validate_cmd(onnx_paths, engines, plugin, runtime, ort_provider, ort_ops_library, model, checkpoint, use_ema, unsafe_load, precision, num_random, images, batch_size, seed,
                 min_cosine, min_top1, max_rel_l2, report_json, report_md):
    """Compare exported graphs with the fp32 PyTorch model (max/rel error, cosine, top-1/top-5).

    Plugin graphs run on onnxruntime with vim-deploy's op library (libvim_ort_ops.so, CPU or CUDA
    provider) when it is built, else on onnx's reference runtime with a NumPy scan op; portable and
    function graphs on onnxruntime. Exit status 1 when any comparison fails its thresholds.
    """
    for p in (report_json, report_md):
        if p:
            check_writable(p)
    overrides = {k: v for k, v in (("min_cosine", min_cosine), ("min_top1", min_top1), ("max_rel_l2", max_rel_l2))
                 if v is not None}
    if engines and plugin is None:
        from vim_deploy.native import paths as native_paths

        found, _ = native_paths.find_library(native_paths.PLUGIN_LIB)
        plugin = str(found) if found else None
    cfg = ValidateConfig(onnx=list(onnx_paths), engines=list(engines), plugin=plugin, model=model, checkpoint=checkpoint, use_ema=use_ema,
                         unsafe_load=unsafe_load, precision=precision, num_random=num_random, batch_size=batch_size,
                         images=images, seed=seed, thresholds=overrides, runtime=runtime,
                         ort_provider=ort_provider, ort_ops_library=ort_ops_library)
    log.info("RUNNING | validate")
    report = run_validation(cfg, progress=Progress())
    click.echo(to_markdown(report))
    write_reports(report, report_json, report_md)
    for r in report["results"]:
        m = r["metrics"]
        line = (f"{r['backend']} ({r['graph']}, {r['precision']}) | cosine_min={m['cosine_min']:.7f} "
                f"rel_l2={m['rel_l2']:.2e} top1={m['top1_agreement']:.1%}")
        (log.passed if r["passed"] else log.failed)(line + ("" if r["passed"] else " | " + "; ".join(r["why"])))
    if not report["passed"]:
        raise SystemExit(1)
