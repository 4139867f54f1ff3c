"""`vim-deploy validate`: the fp32 PyTorch reference vs each deployed artifact (ONNX graphs on
onnxruntime or the reference evaluator, TensorRT engines), with per-precision tolerances.

The reference is always the fp32 PyTorch model with the weights the graph was exported from (the
file's metadata names the model, resolution, precision and checkpoint or seed). Each graph runs on
the backend that can execute it here: onnxruntime for portable/function graphs, onnx's
ReferenceEvaluator plus our NumPy scan op for plugin graphs (bare custom nodes), or onnxruntime
with vim-deploy's op library when it is built (CPU or CUDA provider). A PyTorch row at
the graph's precision (same precision policy, no ONNX) is reported beside it, so precision loss and
graph bugs can be told apart.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from vim_deploy import __version__, log
from vim_deploy.errors import VimDeployError
from vim_deploy.models import create_model, get_cfg, resolve_name
from vim_deploy.validate.compare import THRESHOLDS, compare_logits, judge
from vim_deploy.validate.inputs import load_images, random_batches
from vim_deploy.export.forms import preset
from vim_deploy.runtimes.graphs import load_onnx, metadata, runner_for_onnx
from vim_deploy.runtimes.torch import TorchRunner


@dataclass
class ValidateConfig:
    onnx: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)  # TensorRT plans from `vim-deploy build` (sidecar metadata)
    plugin: str | None = None
    model: str | None = None
    checkpoint: str | None = None
    use_ema: bool = False
    unsafe_load: bool = False
    precision: str = "fp32"  # only used when the graphs are exported on the fly
    num_random: int = 8
    batch_size: int = 4
    images: str | None = None
    seed: int = 1234  # input seed
    model_seed: int = 0  # weight seed for graphs exported on the fly without a checkpoint
    thresholds: dict = field(default_factory=dict)  # overrides, e.g. {"min_cosine": 0.9999}
    runtime: str = "auto"  # plugin graphs: onnxruntime + op library ("auto": when built) or the reference evaluator
    ort_provider: str | None = None  # onnxruntime provider: "cpu" / "cuda" (None: see runner_for_onnx)
    ort_ops_library: str | None = None  # libvim_ort_ops.so (None: $VIM_DEPLOY_ORT_OPS_LIB, build/)


def _graph_infos(cfg: ValidateConfig, tmpdir: str, say) -> list[tuple[str, dict]]:
    from vim_deploy.export import ExportConfig, export_onnx

    if cfg.onnx or cfg.engines:
        from vim_deploy.trt.sidecar import read_sidecar

        out = [(p, dict(read_sidecar(p).get("onnx_metadata", {}), _engine="1")) for p in cfg.engines]
        for p in cfg.onnx:
            meta = metadata(load_onnx(p))
            if "model_name" not in meta:
                raise VimDeployError(f"'{p}' has no vim-deploy metadata (model_name).",
                                     "Validate files written by `vim-deploy export`.")
            out.append((p, meta))
        return out
    model = cfg.model or "vim_tiny"
    out = []
    for form_name, impl in (("plain", "plugin"), ("portable", "portable")):
        path = os.path.join(tmpdir, f"{model}_{impl}_{cfg.precision}.onnx")
        say(f"exporting {model} ({impl}, {cfg.precision}) to a temporary file")
        export_onnx(ExportConfig(model=model, output=path, checkpoint=cfg.checkpoint, use_ema=cfg.use_ema,
                                 unsafe_load=cfg.unsafe_load, precision=cfg.precision, form=preset(form_name),
                                 seed=cfg.model_seed))
        out.append((path, metadata(load_onnx(path))))
    return out


def _reference_model(cfg: ValidateConfig, meta: dict):
    name = meta["model_name"]
    if cfg.model and resolve_name(cfg.model) != name:
        raise VimDeployError(f"--model {cfg.model} differs from the graph's model '{name}'.",
                             "Drop --model (it is read from the ONNX metadata) or pass the matching graph.")
    ckpt_meta = meta.get("checkpoint", "")
    seed = 0
    if ckpt_meta.startswith("seeded-random"):
        if cfg.checkpoint:
            raise VimDeployError("the graph was exported with seeded random weights, but --checkpoint was given.",
                                 "Re-export with --checkpoint, or drop it here.")
        # graphs of this version carry the seed as a value; older ones only inside the checkpoint text
        seed = int(meta["weights_seed"]) if meta.get("weights_seed") else int(ckpt_meta.split("seed=")[1].rstrip(")"))
    elif not cfg.checkpoint:
        raise VimDeployError(f"the graph was exported from checkpoint '{ckpt_meta}'; pass it with --checkpoint.")
    model = create_model(name, checkpoint=cfg.checkpoint, img_size=int(meta["img_size"]), use_ema=cfg.use_ema,
                         seed=seed, unsafe_load=cfg.unsafe_load, **json.loads(meta.get("model_overrides") or "{}"))
    graph_classes = meta.get("num_classes")
    if graph_classes and int(graph_classes) != model.num_classes:
        raise VimDeployError(
            f"the graph has {graph_classes} classes, the checkpoint {cfg.checkpoint or '(seeded weights)'} "
            f"{model.num_classes}: they are not the same model.",
            "Pass the checkpoint the graph was exported from (its metadata names it: "
            f"'{meta.get('checkpoint', '?')}').")
    return model


def _run_all(runner, batches: list[np.ndarray], say=None, what: str = "") -> tuple[np.ndarray, float]:
    """All batches through `runner`, reporting samples done after each batch (a slow runtime, e.g. the
    reference evaluator, takes minutes: the user sees it move)."""
    t = time.perf_counter()
    outs, done, total = [], 0, sum(len(b) for b in batches)
    bar = getattr(say, "bar", None)  # the CLI's Progress draws a bar; plain callables get a line per batch
    tick = bar(what, total, "samples") if bar and len(batches) > 1 else None
    for b in batches:
        if not np.isfinite(b).all():
            log.warning(f"{what}: an input batch holds {int((~np.isfinite(b)).sum())} NaN / inf values.")
        outs.append(runner.infer(b))
        done += len(b)
        if tick:
            tick(len(b))
        elif say and len(batches) > 1:
            say(f"{what}: {done}/{total} samples")
    out = np.concatenate(outs)
    bad = ~np.isfinite(out)
    if bad.any():
        log.warning(f"{getattr(runner, 'name', what)}: {int(bad.sum())} of {out.size} logits are NaN / inf "
                    f"({int(bad.any(axis=1).sum())} of {len(out)} samples).")
    return out, time.perf_counter() - t


def run_validation(cfg: ValidateConfig, progress=None) -> dict:
    """Run every comparison and return the report (see :mod:`vim_deploy.validate.report`)."""
    say = progress or (lambda msg: None)
    if cfg.num_random < 0 or cfg.batch_size < 1:
        raise VimDeployError("--num-random must be >= 0 and --batch-size >= 1.")
    if cfg.num_random == 0 and not cfg.images:
        raise VimDeployError("nothing to validate on: --num-random 0 and no --images.")
    if cfg.engines:
        from vim_deploy.trt.sidecar import read_sidecar

        for p in cfg.engines:
            read_sidecar(p)  # a missing/bad sidecar is reported before anything else
    if cfg.engines and not torch.cuda.is_available():
        raise VimDeployError("running a TensorRT engine needs a CUDA GPU; PyTorch sees none.",
                             "Validate the ONNX graphs here (--onnx) and the engine on the GPU machine.")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vim-deploy-validate-") as tmp:
        graphs = _graph_infos(cfg, tmp, say)
        ref_key, ref_logits, inputs_desc, torch_rows_done = None, None, None, set()
        for path, meta in graphs:
            key = (meta["model_name"], meta.get("checkpoint"), meta["img_size"], meta.get("model_overrides"))
            if key != ref_key:
                say(f"building the fp32 PyTorch reference ({meta['model_name']} @ {meta['img_size']})")
                model = _reference_model(cfg, meta)
                img = int(meta["img_size"])
                batches = list(random_batches(cfg.num_random, cfg.batch_size, img, cfg.seed))
                inputs_desc = {"random": cfg.num_random, "images": [], "seed": cfg.seed, "img_size": img}
                if cfg.images:
                    pcfg = get_cfg(meta["model_name"])
                    pics, names = load_images(cfg.images, img, pcfg["crop_pct"], pcfg["mean"], pcfg["std"])
                    batches += [pics[i:i + cfg.batch_size] for i in range(0, len(pics), cfg.batch_size)]
                    inputs_desc["images"] = names
                ref = TorchRunner(model, "fp32")
                say("running the reference")
                ref_logits, _ = _run_all(ref, batches, say, "reference")
                ref_key = key
                torch_rows_done = {"fp32"}
            prec = meta.get("precision", "fp32")
            if prec not in torch_rows_done:
                torch_rows_done.add(prec)
                tr = TorchRunner(_reference_model(cfg, meta), prec)
                say(f"running PyTorch at {prec} (same precision policy as the graph)")
                out, secs = _run_all(tr, batches, say, tr.name)
                rows.append(_row(tr.name, None, "pytorch", prec, out, ref_logits, secs, cfg))
            if meta.get("_engine"):
                from vim_deploy.runtimes.tensorrt import EngineRunner

                runner, kind = EngineRunner(path, cfg.plugin), "engine"
            else:
                runner, kind, _ = runner_for_onnx(path, cfg.runtime, cfg.ort_provider, cfg.ort_ops_library)
            say(f"running {os.path.basename(path)} ({kind} graph) on {runner.name}")
            out, secs = _run_all(runner, batches, say, runner.name)
            rows.append(_row(runner.name, path if (cfg.onnx or cfg.engines) else os.path.basename(path), kind,
                             meta.get("precision", "fp32"), out, ref_logits, secs, cfg))
    recipes = {}
    if cfg.engines:
        from vim_deploy.runtimes.tensorrt import polygraphy_recipe

        th = dict(THRESHOLDS.get(graphs[0][1].get("precision", "fp32"), THRESHOLDS["fp32"]))
        ck = f" --checkpoint {cfg.checkpoint}" if cfg.checkpoint else ""
        for p in cfg.engines:
            recipes[p] = (f"vim-deploy export -m {graphs[0][1]['model_name']}{ck} --img-size {graphs[0][1]['img_size']} "
                          f"--scan-impl portable -o ref_portable.onnx && "
                          + polygraphy_recipe("ref_portable.onnx", p, cfg.plugin, atol=1e-3, rtol=th["max_rel_l2"]))
    return {
        "polygraphy_recipes": recipes,
        "tool": f"vim-deploy {__version__}",
        "command": "validate",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count()},
        "model": graphs[0][1]["model_name"],
        "checkpoint": graphs[0][1].get("checkpoint"),
        "reference": "pytorch-fp32",
        "inputs": inputs_desc,
        "results": rows,
        "passed": all(r["passed"] for r in rows),
    }


def _row(backend, path, kind, precision, out, ref, secs, cfg) -> dict:
    m = compare_logits(out, ref)
    th = dict(THRESHOLDS.get(precision, THRESHOLDS["fp32"]), **cfg.thresholds)
    why = judge(m, th)
    return {"backend": backend, "onnx": path, "graph": kind, "precision": precision, "metrics": m.as_dict(),
            "thresholds": th, "passed": not why, "why": why, "seconds": round(secs, 3)}
