"""`vim-deploy export`: PyTorch Vim -> ONNX, in a graph form (vim_deploy/export/forms.py)."""

from __future__ import annotations

import click

from vim_deploy import log
from vim_deploy.cli.options import Progress, graph_form_options, logging_options, model_options
from vim_deploy.export import PRECISIONS, ExportConfig, export_onnx
from vim_deploy.export.forms import PRESETS
from vim_deploy.export.onnx_export import TRACE_DEVICES, validate_config
from vim_deploy.io_utils import atomic_write_text, check_writable, dumps_json
from vim_deploy.ops import schema


def default_output(model: str, img_size: int | None, precision: str, form) -> str:
    """<model>[_<size>][_fp16][_<form>].onnx: what differs from the plain 224 px fp32 export is in the name,
    so exports of other sizes, precisions or forms never overwrite each other."""
    parts = [model]
    if img_size is not None and img_size != 224:
        parts.append(str(img_size))
    if precision != "fp32":
        parts.append(precision)
    name = form.name
    if name != "plain":
        parts.append(name if name in PRESETS else name.replace("=", "-").replace(",", "_"))
    return "_".join(parts) + ".onnx"


@click.command("export")
@model_options()
@click.option("--output", "-o", default=None,
              help="Output .onnx path [default: <model>[_<img-size>][_fp16][_<form>].onnx, e.g. vim_tiny_fp16_fused.onnx].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16: half-precision weights and activations, fp32 residual/norms/scan state "
                   "(TensorRT 11 is strongly typed: precision lives in the ONNX).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 or 18).")
@click.option("--img-size", type=int, default=None, help="Input resolution [default: the model's, 224]. "
              "Any size with (size - patch) divisible by the stride; pos_embed is resampled.")
@click.option("--static-batch", is_flag=True, help="Fix the batch axis instead of a dynamic 'batch' axis.")
@click.option("--batch-size", "--batch", "batch_size", type=int, default=1, show_default=True,
              help="Batch of the traced input (the fixed batch with --static-batch).")
@click.option("--seed", type=int, default=0, show_default=True, help="Weight seed when no checkpoint is given.")
@click.option("--report-json", type=click.Path(dir_okay=False), default=None, help="Write an export summary (JSON).")
@click.option("--allow-non-finite", is_flag=True, help="Load NaN / inf weights and export anyway (refused by default).")
@click.option("--trace-device", type=click.Choice(list(TRACE_DEVICES)), default="cpu", show_default=True,
              help="Where the model runs while it is traced (the graph is the same): cuda exports 1248 px models "
                   "in seconds where the CPU, in fp16, takes minutes.")
@graph_form_options
@logging_options
def export_cmd(model, checkpoint, use_ema, unsafe_load, output, precision, opset, img_size, static_batch,
               batch_size, seed, report_json, allow_non_finite, trace_device, form):
    """Export a Vim model to ONNX; each selective scan becomes one VimSelectiveScan node."""
    form.validate()
    if output is None:
        output = default_output(model, img_size, precision, form)
    if report_json:
        check_writable(report_json)
    cfg = ExportConfig(model=model, output=output, checkpoint=checkpoint, use_ema=use_ema, unsafe_load=unsafe_load,
                       img_size=img_size, precision=precision, opset=opset, form=form,
                       dynamic_batch=not static_batch, batch_size=batch_size, seed=seed,
                       allow_non_finite=allow_non_finite, trace_device=trace_device)
    validate_config(cfg)
    if checkpoint is None:
        log.warning(f"no --checkpoint given: exporting {model} with SEEDED RANDOM weights (seed {seed}). "
                    "The graph is structurally real but its predictions are meaningless.")
    log.info(f"RUNNING | export {model} -> {output}")
    res = export_onnx(cfg, progress=Progress())
    op = "VimBiSelectiveScan" if form.fuse_bidirectional else "VimSelectiveScan"
    log.passed(f"wrote {res.path}: {res.num_scan_nodes} {op} nodes (form {form.name}), {res.num_nodes} nodes, "
               f"{res.size_bytes / 2**20:.1f} MiB, opset {res.opset}, {res.precision}, {res.img_size}x{res.img_size} "
               f"| Runtime: {res.seconds:.1f}s")
    ort_only = {k.split("::")[-1]: v for k, v in res.op_histogram.items() if k.split("::")[-1] in schema.ORT_ONLY_OPS}
    if ort_only:
        log.info(f"the graph has {', '.join(f'{v} {k}' for k, v in ort_only.items())} nodes: it runs on onnxruntime "
                 "with libvim_ort_ops.so (vim_deploy.ort.create_session); for TensorRT export a form without "
                 "--conv-impl op / --norm-impl op (e.g. --form plain or fused).")
    if report_json:
        atomic_write_text(report_json, dumps_json(res.__dict__))
