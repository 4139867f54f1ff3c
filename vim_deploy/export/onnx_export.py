"""PyTorch Vim -> ONNX with one custom node per selective scan.

The model is traced with torch.onnx's TorchScript exporter (``dynamo=False``), where
``vim_deploy.ops.selective_scan`` emits each scan as one ``vim_deploy::VimSelectiveScan`` node
through an autograd Function's ``symbolic``. The dynamo exporter is not used: it is known to drop
custom ops silently. Every export is checked afterwards (node count, full checker, shape
inference), so a silent drop cannot pass.

How the graph writes the model is its :class:`~vim_deploy.export.forms.GraphForm` (scan nodes, local
function or portable standard ops; fused directions; conv / add-norm nodes; token padding), traced through
:mod:`vim_deploy.export.graph_forward`; the form is recorded in the graph's metadata.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field

import onnx
import torch

from vim_deploy import __version__
from vim_deploy.errors import VimDeployError
from vim_deploy.export import graph_cleanup
from vim_deploy.export.forms import GraphForm
from vim_deploy.export.graph_forward import traced_in_form
from vim_deploy.export.portable_scan import build_bi_scan_function, build_scan_function
from vim_deploy.io_utils import atomic_write_bytes, check_writable
from vim_deploy.models import create_model, get_cfg, resolve_name
from vim_deploy.ops import schema

SUPPORTED_OPSETS = (17, 18)
PRECISIONS = ("fp32", "fp16")
TRACE_DEVICES = ("cpu", "cuda")
INPUT_NAME, OUTPUT_NAME = "input", "logits"


@dataclass
class ExportConfig:
    model: str = "vim_tiny"
    output: str = "vim_tiny.onnx"
    checkpoint: str | None = None
    use_ema: bool = False
    unsafe_load: bool = False
    img_size: int | None = None
    precision: str = "fp32"
    opset: int = 17
    form: GraphForm = field(default_factory=GraphForm)  # how the graph writes the model (export/forms.py)
    dynamic_batch: bool = True
    batch_size: int = 1
    seed: int = 0
    allow_non_finite: bool = False  # load NaN / inf weights and export a graph whose output is not finite
    trace_device: str = "cpu"  # where the model runs while traced: "cuda" makes large resolutions export in seconds
    model_kwargs: dict = field(default_factory=dict)  # architecture overrides (e.g. depth=2 in tests)


# Bytes of activations per token and model channel while the model is traced: a generous estimate
# (fp32 in_proj and conv outputs of both directions, the reference scan's per-state tensors), not a
# measurement; it only has to tell 1248 px (fine) from 100000 px (1.8 TB) before any allocation.
_TRACE_BYTES_PER_TOKEN_CHANNEL = 4 * 64


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_activation_memory(official: str, cfg: "ExportConfig") -> None:
    """Refuse, in one line, a resolution whose traced activations cannot fit in this machine's memory."""
    from vim_deploy.models.vim import ARCH_ARGS

    arch = ARCH_ARGS.get(official)
    if arch is None or cfg.img_size is None:
        return
    side = (cfg.img_size - arch["patch_size"]) // arch["stride"] + 1
    tokens = side * side + 1
    need = cfg.batch_size * tokens * arch["embed_dim"] * _TRACE_BYTES_PER_TOKEN_CHANNEL
    have = _physical_memory()
    if have and need > 0.8 * have:
        raise VimDeployError(
            f"--img-size {cfg.img_size} gives {tokens:,} tokens: tracing needs about {need / 2**30:,.0f} GiB of "
            f"activations, this machine has {have / 2**30:,.0f} GiB.",
            "Export at a smaller resolution (the paper's largest is 1248) or on a machine with more memory.")


@dataclass
class ExportResult:
    path: str
    model: str
    precision: str
    scan_impl: str
    opset: int
    img_size: int
    num_scan_nodes: int
    num_nodes: int
    size_bytes: int
    seconds: float
    op_histogram: dict = field(default_factory=dict)


def validate_config(cfg: ExportConfig) -> None:
    """Reject bad options before any work (one-line errors)."""
    resolve_name(cfg.model)
    if cfg.opset not in SUPPORTED_OPSETS:
        raise VimDeployError(f"opset {cfg.opset} is not supported.",
                             f"Use one of {', '.join(map(str, SUPPORTED_OPSETS))} (17 is the default; TensorRT 10.3 parses both).")
    if cfg.precision not in PRECISIONS:
        raise VimDeployError(f"unsupported export precision '{cfg.precision}'.", f"Use one of {', '.join(PRECISIONS)}.")
    cfg.form.validate()
    if cfg.batch_size < 1:
        raise VimDeployError(f"batch size must be >= 1, got {cfg.batch_size}.")
    if cfg.trace_device not in TRACE_DEVICES:
        raise VimDeployError(f"unknown trace device '{cfg.trace_device}'.", f"Use one of {', '.join(TRACE_DEVICES)}.")
    if cfg.trace_device == "cuda" and not torch.cuda.is_available():
        raise VimDeployError("--trace-device cuda: torch sees no CUDA GPU here.", "Drop --trace-device (CPU tracing).")
    check_writable(cfg.output)


def export_onnx(cfg: ExportConfig, progress=None) -> ExportResult:
    """Export ``cfg.model`` to ``cfg.output`` (written atomically) and return a summary."""
    validate_config(cfg)
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    official = resolve_name(cfg.model)
    if cfg.trace_device == "cpu":  # (a GPU's memory is the device's business: torch says so if it runs out)
        _check_activation_memory(official, cfg)
    say(f"building {cfg.model} ({'checkpoint ' + cfg.checkpoint if cfg.checkpoint else 'seeded weights, seed %d' % cfg.seed})")
    model = create_model(cfg.model, checkpoint=cfg.checkpoint, img_size=cfg.img_size, use_ema=cfg.use_ema,
                         seed=cfg.seed, unsafe_load=cfg.unsafe_load, bidirectional=cfg.form.bidirectional,
                         allow_non_finite=cfg.allow_non_finite, **cfg.model_kwargs)
    model.set_precision(cfg.precision).requires_grad_(False)
    form = cfg.form
    img = model.patch_embed.img_size[0]
    # drawn on the CPU whatever the device (the same probe input either way); the parameters travel
    # with the model and are written back as the same initializers
    model.to(cfg.trace_device)
    dummy = torch.randn(cfg.batch_size, 3, img, img).to(cfg.trace_device)

    say(f"tracing with torch {torch.__version__} on {cfg.trace_device} (opset {cfg.opset}, {cfg.precision})")
    buf = io.BytesIO()
    # a bar over the blocks while the tracer runs the model (the longest phase at large resolutions)
    bar = getattr(progress, "bar", None)
    tick = bar(f"tracing {len(model.layers)} blocks", len(model.layers)) if bar else None
    blocks_done = [0]

    def on_block():
        if tick:
            tick()
        blocks_done[0] += 1
        if blocks_done[0] == len(model.layers):  # the tracer's own passes follow, silent otherwise
            say("converting the trace to ONNX nodes (torch.onnx; seconds, minutes at large resolutions)")

    with warnings.catch_warnings(), torch.no_grad(), traced_in_form(model, form, on_block=on_block):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), buf, dynamo=False, opset_version=cfg.opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if cfg.dynamic_batch else None,
            do_constant_folding=True, custom_opsets={schema.OP_DOMAIN: schema.OP_DOMAIN_VERSION},
        )
    proto = onnx.load_from_string(buf.getvalue())
    if not cfg.allow_non_finite:
        say("checking that the model's output on a random input is finite")
        with torch.no_grad():
            probe = model(dummy[:1])
        if not bool(torch.isfinite(probe).all()):
            raise VimDeployError("the model's output on a random input is not finite (NaN / inf): the graph would be "
                                 "useless.", "Check the weights (or pass --allow-non-finite to export anyway).")

    say("cleaning the graph (constant folding, dead nodes, names)")
    proto = graph_cleanup.cleanup(proto)
    n_scans = graph_cleanup.count_scan_nodes(proto)
    expected = len(model.layers) * (1 if form.fuse_bidirectional else 2)
    if n_scans != expected:
        raise VimDeployError(f"internal error: the traced graph has {n_scans} scan nodes, expected {expected}.",
                             "The exporter dropped or duplicated custom ops; please report this with your torch version.")

    if form.scan_impl in ("function", "portable"):
        proto.functions.append(build_scan_function(cfg.opset))
        if form.fuse_bidirectional:
            proto.functions.append(build_bi_scan_function(cfg.opset))
    if form.scan_impl == "portable":
        say("inlining the portable scan")
        proto = graph_cleanup.inline_scan_functions(proto)

    pcfg = get_cfg(official)
    graph_cleanup.set_metadata(proto, {
        "model_name": official,
        "model_alias": cfg.model,
        "checkpoint": os.path.basename(cfg.checkpoint) if cfg.checkpoint else f"seeded-random(seed={cfg.seed})",
        "weights_seed": "" if cfg.checkpoint else str(cfg.seed),  # a value of its own: no parsing of the line above
        "img_size": str(img),
        "precision": cfg.precision,
        **form.metadata(),  # scan_impl, bidirectional, fuse_bidirectional, conv_impl, norm_impl, token_padding
        "graph_form": form.name,
        "scan_op": f"{schema.OP_DOMAIN}::{schema.BI_OP_NAME if form.fuse_bidirectional else schema.OP_NAME} "
                   f"v{schema.PLUGIN_VERSION}",
        "preprocessing": (f"resize {int(round(img / pcfg['crop_pct']))} {pcfg['interpolation']}, center crop {img}, "
                          f"RGB in [0,1], normalize mean={list(pcfg['mean'])} std={list(pcfg['std'])}, NCHW float32"),
        "num_classes": str(model.num_classes),
        "model_overrides": json.dumps(cfg.model_kwargs, sort_keys=True),
        "producer": f"vim-deploy {__version__} (torch {torch.__version__})",
    })
    proto.producer_name, proto.producer_version = "vim-deploy", __version__

    say("checking (full checker and shape inference)")
    proto = graph_cleanup.check_and_infer(proto)
    data = proto.SerializeToString()
    atomic_write_bytes(cfg.output, data)
    return ExportResult(
        path=cfg.output, model=official, precision=cfg.precision, scan_impl=form.scan_impl, opset=cfg.opset,
        img_size=img, num_scan_nodes=graph_cleanup.count_scan_nodes(proto), num_nodes=len(proto.graph.node),
        size_bytes=len(data), seconds=time.perf_counter() - t0, op_histogram=graph_cleanup.op_histogram(proto),
    )
