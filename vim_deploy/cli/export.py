"""`vim-deploy export`: PyTorch Vim -> ONNX."""

from __future__ import annotations


import click

from vim_deploy import log
from vim_deploy.ops import schema
from vim_deploy.cli.options import Progress, logging_options, model_options
from vim_deploy.export import PRECISIONS, SCAN_IMPLS, ExportConfig, export_onnx
from vim_deploy.export.onnx_export import ORT_OPTIMIZED_LAYOUT, ORT_OPTIMIZED_PADDING, TRACE_DEVICES, validate_config
from vim_deploy.models.vim import PROJECTION_LAYOUTS
from vim_deploy.io_utils import dumps_json, atomic_write_text, check_writable


@click.command("export")
@model_options()
@click.option("--output", "-o", default=None, help="Output .onnx path [default: <model>[_fp16][_<scan-impl>].onnx].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16: half-precision weights and activations, fp32 residual/norms/scan state "
                   "(TensorRT 11 is strongly typed: precision lives in the ONNX).")
@click.option("--scan-impl", type=click.Choice(SCAN_IMPLS), default="plugin", show_default=True,
              help="plugin: one VimSelectiveScan custom node per scan (TensorRT + our plugin); "
                   "function: custom node + ONNX local function (runs on onnxruntime too); "
                   "portable: standard ONNX ops only.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 or 18).")
@click.option("--img-size", type=int, default=None, help="Input resolution [default: the model's, 224]. "
              "Any size with (size - patch) divisible by the stride; pos_embed is resampled.")
@click.option("--static-batch", is_flag=True, help="Fix the batch axis instead of a dynamic 'batch' axis.")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Batch of the traced input (the fixed batch with --static-batch).")
@click.option("--bidirectional", type=click.Choice(["reverse", "flip"]), default="reverse", show_default=True,
              help="Backward branch as reverse scans (no flips in the graph) or literally flip -> scan -> flip.")
@click.option("--fuse-bidirectional", is_flag=True,
              help="One VimBiSelectiveScan node per block (both directions, one kernel launch) instead of two "
                   "VimSelectiveScan nodes: 24 plugin layers for 24 blocks.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weight seed when no checkpoint is given.")
@click.option("--report-json", type=click.Path(dir_okay=False), default=None, help="Write an export summary (JSON).")
@click.option("--conv-impl", type=click.Choice(["conv", "taps", "op"]), default="conv", show_default=True,
              help="Depthwise causal conv1d as grouped Conv nodes (any runtime; TensorRT), as shifted "
                   "multiply-adds (taps), or both directions' conv + SiLU as one VimBiCausalConv1dSilu node "
                   "(op: onnxruntime with vim-deploy's op library only, its fastest form on CUDA).")
@click.option("--ort-optimized", is_flag=True,
              help="Shorthand for --fuse-bidirectional --conv-impl op --norm-impl op --pad-tokens 8 "
                   f"--projection-layout {ORT_OPTIMIZED_LAYOUT}: the fastest graph for onnxruntime with "
                   "vim-deploy's op library (not for TensorRT). Explicit --pad-tokens / --projection-layout win.")
@click.option("--norm-impl", type=click.Choice(["ops", "op"]), default="ops", show_default=True,
              help="Each block's residual add + RMSNorm as standard ONNX ops (any runtime), or as one "
                   "VimAddRmsNorm node (op: onnxruntime with vim-deploy's op library only).")
@click.option("--projection-layout", type=click.Choice(list(PROJECTION_LAYOUTS)), default=None,
              help="Mixer projections as upstream's Linear layers on (B, L, C) with a Transpose to the scan's "
                   "(B, C, L) layout after each (tokens, the default), as W @ (B, C, L) products that give the "
                   "scan's layout directly (channels: 49 instead of 241 Transposes in vim_tiny; same products), "
                   "or in_proj / out_proj on tokens and x_proj / dt_proj as W @ (B, C, L) (hybrid).")
@click.option("--pad-tokens", type=click.IntRange(1, 64), default=None,
              help="Pad the token sequence to a multiple of N (8: 197 -> 200 tokens at 224 px) so every GEMM reads "
                   "aligned rows; needs --conv-impl op, which keeps the padding out of the result [default: 1, "
                   "8 with --ort-optimized].")
@click.option("--allow-non-finite", is_flag=True, help="Load NaN / inf weights and export anyway (refused by default).")
@click.option("--trace-device", type=click.Choice(list(TRACE_DEVICES)), default="cpu", show_default=True,
              help="Where the model runs while it is traced (the graph is the same): cuda exports 1248 px models "
                   "in seconds where the CPU, in fp16, takes minutes.")
@logging_options
def export_cmd(model, checkpoint, use_ema, unsafe_load, output, precision, scan_impl, opset, img_size, static_batch,
               batch_size, bidirectional, fuse_bidirectional, seed, report_json, conv_impl, ort_optimized, norm_impl,
               projection_layout, pad_tokens, allow_non_finite, trace_device):
    """Export a Vim model to ONNX; each selective scan becomes one VimSelectiveScan node."""
    if ort_optimized:
        fuse_bidirectional, conv_impl, norm_impl = True, "op", "op"
    if projection_layout is None:
        projection_layout = ORT_OPTIMIZED_LAYOUT if ort_optimized else "tokens"
    if pad_tokens is None:
        pad_tokens = ORT_OPTIMIZED_PADDING if ort_optimized else 1
    if output is None:
        output = f"{model}{'_fp16' if precision == 'fp16' else ''}{'' if scan_impl == 'plugin' else '_' + scan_impl}.onnx"
    if report_json:
        check_writable(report_json)
    cfg = ExportConfig(model=model, output=output, checkpoint=checkpoint, use_ema=use_ema, unsafe_load=unsafe_load,
                       img_size=img_size, precision=precision, opset=opset, scan_impl=scan_impl,
                       bidirectional=bidirectional, dynamic_batch=not static_batch, batch_size=batch_size, seed=seed,
                       fuse_bidirectional=fuse_bidirectional, allow_non_finite=allow_non_finite,
                       conv_impl=conv_impl, norm_impl=norm_impl,
                       projection_layout=projection_layout, token_padding=pad_tokens,
                       trace_device=trace_device)
    validate_config(cfg)
    if checkpoint is None:
        log.warning(f"no --checkpoint given: exporting {model} with SEEDED RANDOM weights (seed {seed}). "
                    "The graph is structurally real but its predictions are meaningless.")
    log.info(f"RUNNING | export {model} -> {output}")
    res = export_onnx(cfg, progress=Progress())
    op = "VimBiSelectiveScan" if fuse_bidirectional else "VimSelectiveScan"
    log.passed(f"wrote {res.path}: {res.num_scan_nodes} {op} nodes ({res.scan_impl}), {res.num_nodes} nodes, "
               f"{res.size_bytes / 2**20:.1f} MiB, opset {res.opset}, {res.precision}, {res.img_size}x{res.img_size} "
               f"| Runtime: {res.seconds:.1f}s")
    ort_only = {k.split("::")[-1]: v for k, v in res.op_histogram.items() if k.split("::")[-1] in schema.ORT_ONLY_OPS}
    if ort_only:
        log.info(f"the graph has {', '.join(f'{v} {k}' for k, v in ort_only.items())} nodes: it runs on onnxruntime "
                 "with libvim_ort_ops.so (vim_deploy.ort.create_session); for TensorRT export without "
                 "--ort-optimized / --conv-impl op / --norm-impl op.")
    if report_json:
        atomic_write_text(report_json, dumps_json(res.__dict__))
