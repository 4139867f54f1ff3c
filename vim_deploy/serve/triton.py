"""A Triton Inference Server model repository for an exported graph or a built engine, from one command.

``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/1/model.onnx`` (onnxruntime backend) or ``model.plan``
(tensorrt backend), with the library the model needs in ``<repo>/lib/``: our ONNX Runtime op library,
named in the config's ``model_operations`` (Triton's onnxruntime backend loads it), or the TensorRT plugin,
which Triton's tensorrt backend loads from ``--backend-config=tensorrt,plugins=<path>`` or ``LD_PRELOAD``
(printed). Input and output names, dims and types come from the graph; ``max_batch_size`` from the graph's
batch axis (a static batch gives 0: no batching) or the engine's profile. ``ensemble=True`` adds a Python
backend model that decodes and preprocesses an image as validate does (resize bicubic, center crop,
ImageNet mean / std) and an ensemble that feeds it to the model. The repository is written to a temporary
folder and renamed, so a failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema

_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
          onnx.TensorProto.BFLOAT16: "TYPE_BF16", onnx.TensorProto.INT64: "TYPE_INT64",
          onnx.TensorProto.INT32: "TYPE_INT32"}
DEFAULT_MAX_BATCH = 32


@dataclass
class Tensor:
    name: str
    data_type: str
    dims: list[int]  # without the batch axis when the model batches


@dataclass
class TritonRepo:
    path: str
    model: str
    backend: str
    max_batch_size: int
    library: str | None
    server_command: str
    models: list[str]


def _tensor(vi, batched: bool) -> Tensor:
    t = vi.type.tensor_type
    if t.elem_type not in _TYPES:
        raise VimDeployError(f"graph tensor '{vi.name}' has element type {onnx.TensorProto.DataType.Name(t.elem_type)}, "
                             "which this repository writer does not map to a Triton type.")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    return Tensor(vi.name, _TYPES[t.elem_type], dims[1:] if batched else dims)


def _io(graph_path: str) -> tuple[onnx.ModelProto, bool, list[Tensor], list[Tensor]]:
    from vim_deploy.runtimes.graphs import load_onnx

    proto = load_onnx(graph_path, load_external_data=False)
    first = proto.graph.input[0].type.tensor_type.shape.dim
    batched = bool(first) and not first[0].HasField("dim_value")
    return (proto, batched, [_tensor(v, batched) for v in proto.graph.input],
            [_tensor(v, batched) for v in proto.graph.output])


def _pbtxt_tensors(kind: str, tensors: list[Tensor]) -> str:
    rows = [f'  {{ name: "{t.name}", data_type: {t.data_type}, dims: [ {", ".join(map(str, t.dims))} ] }}'
            for t in tensors]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _model_config(name: str, backend: str, max_batch: int, inputs, outputs, extra: str = "") -> str:
    platform = 'platform: "tensorrt_plan"\n' if backend == "tensorrt" else 'backend: "onnxruntime"\n'
    text = f'name: "{name}"\n{platform}max_batch_size: {max_batch}\n'
    text += _pbtxt_tensors("input", inputs) + _pbtxt_tensors("output", outputs)
    if max_batch > 0:
        text += "dynamic_batching { }\n"
    return text + extra


def _custom_domains(proto: onnx.ModelProto) -> set[str]:
    return {n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")}


def write_repository(out: str, onnx_path: str, engine: str | None = None, name: str | None = None,
                     max_batch: int | None = None, ops_library: str | None = None, plugin: str | None = None,
                     ensemble: bool = False, serving_root: str | None = None, force: bool = False) -> TritonRepo:
    """Write the repository at ``out``; ``serving_root``: where the repository lies on the server (the
    library paths in configs and the printed command use it; default: ``out`` made absolute)."""
    out_path = Path(out)
    if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())) and not force:
        raise VimDeployError(f"'{out}' exists and is not an empty folder.", "Pass --force to replace it, or another --out.")
    proto, batched, inputs, outputs = _io(onnx_path)
    meta = {p.key: p.value for p in proto.metadata_props}
    name = name or meta.get("model_alias") or Path(onnx_path).stem
    root = serving_root or str(out_path.resolve())
    domains = _custom_domains(proto)
    foreign = domains - {schema.OP_DOMAIN}
    if foreign:
        raise VimDeployError(f"'{onnx_path}' has nodes of the domain(s) {', '.join(sorted(foreign))}, which Triton's "
                             "backends cannot serve.", "Export the graph with `vim-deploy export`.")
    if ensemble and not batched:  # said before any library is looked for
        raise VimDeployError("the preprocessing ensemble needs a model that batches (a dynamic-batch graph).",
                             "Export with a dynamic batch (the default), or drop --ensemble.")
    library = None
    if engine:
        from vim_deploy.native.paths import find_plugin_library
        from vim_deploy.trt.sidecar import read_sidecar

        if not os.path.isfile(engine):
            raise VimDeployError(f"engine '{engine}' does not exist.")
        profile = read_sidecar(engine).get("profile", {})
        backend = "tensorrt"
        max_batch = max_batch or (int(profile["max"][0]) if batched and profile.get("max") else 0)
        if schema.scan_nodes(proto):
            library = str(find_plugin_library(plugin))
    else:
        backend = "onnxruntime"
        plugin_nodes = [n for n in proto.graph.node if n.domain == schema.OP_DOMAIN]
        local = {f.name for f in proto.functions if f.domain == schema.OP_DOMAIN}
        if plugin_nodes and not {n.op_type for n in plugin_nodes} <= local:  # a function form runs without it
            from vim_deploy.ort.session import find_ops_library

            library = str(find_ops_library(ops_library))
        max_batch = (max_batch or DEFAULT_MAX_BATCH) if batched else 0
    if not batched and max_batch:
        raise VimDeployError("the graph has a static batch: Triton cannot batch it.",
                             "Export with a dynamic batch (the default), or drop --max-batch.")
    lib_name = os.path.basename(library) if library else None
    extra = ""
    if backend == "onnxruntime" and lib_name:
        extra = f'model_operations {{ op_library_filename: "{root}/lib/{lib_name}" }}\n'
    models = [name]
    parent = out_path.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}-", dir=parent))
    try:
        (tmp / name / "1").mkdir(parents=True)
        shutil.copyfile(engine or onnx_path, tmp / name / "1" / ("model.plan" if engine else "model.onnx"))
        (tmp / name / "config.pbtxt").write_text(_model_config(name, backend, max_batch, inputs, outputs, extra))
        if library:
            (tmp / "lib").mkdir()
            shutil.copyfile(library, tmp / "lib" / lib_name)
        if ensemble:
            models += _write_ensemble(tmp, name, meta, inputs[0], outputs[0], max_batch)
        if out_path.exists():
            shutil.rmtree(out_path) if out_path.is_dir() else out_path.unlink()
        os.replace(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cmd = f"tritonserver --model-repository={root}"
    if backend == "tensorrt" and lib_name:
        cmd = (f"tritonserver --model-repository={root} --backend-config=tensorrt,plugins={root}/lib/{lib_name}"
               f"    # or: LD_PRELOAD={root}/lib/{lib_name} tritonserver --model-repository={root}")
    return TritonRepo(str(out_path), name, backend, max_batch, library, cmd, models)


# -- the preprocessing ensemble ------------------------------------------------------------------

_PREPROCESS_PY = '''"""Triton Python-backend model written by vim-deploy: encoded image bytes -> the model's input, as
`vim-deploy validate` preprocesses photos (resize the short side to size / crop_pct bicubic, center crop,
RGB in [0, 1], ImageNet mean / std, NCHW float32)."""

import io
import json

import numpy as np
from PIL import Image

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (tests): preprocess_bytes() still works
    pb_utils = None

CFG = json.loads({cfg!r})


{preprocess_src}

def preprocess_bytes(data: bytes) -> np.ndarray:
    """Encoded image bytes -> (3, size, size) float32 (PIL decodes; grayscale / CMYK become RGB)."""
    return preprocess(Image.open(io.BytesIO(data)), CFG["size"], CFG["crop_pct"], CFG["mean"], CFG["std"])


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            batch = np.stack([preprocess_bytes(bytes(b)) for b in images.reshape(-1)])  # (images, 3, size, size)
            tensor = pb_utils.Tensor(CFG["output"], batch.astype(CFG["dtype"]))
            out.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return out
'''


def _write_ensemble(tmp: Path, name: str, meta: dict, inp: Tensor, outp: Tensor, max_batch: int) -> list[str]:
    from vim_deploy.models import get_cfg

    cfg = get_cfg(meta["model_name"]) if meta.get("model_name") else {}
    size = int(meta.get("img_size") or inp.dims[-1])
    pre, ens = f"{name}_preprocess", f"{name}_ensemble"
    dtype = "float16" if inp.data_type == "TYPE_FP16" else "float32"
    pcfg = {"size": size, "crop_pct": cfg.get("crop_pct", 0.875), "mean": list(cfg.get("mean", (0.485, 0.456, 0.406))),
            "std": list(cfg.get("std", (0.229, 0.224, 0.225))), "output": inp.name, "dtype": dtype}
    (tmp / pre / "1").mkdir(parents=True)
    import inspect

    from vim_deploy.validate.inputs import preprocess  # the very transform validate applies, copied verbatim

    src = inspect.getsource(preprocess).replace("{", "{{").replace("}", "}}")
    (tmp / pre / "1" / "model.py").write_text(_PREPROCESS_PY.replace("{preprocess_src}", src).format(cfg=json.dumps(pcfg)))
    image = Tensor("IMAGE", "TYPE_STRING", [1])
    pre_cfg = (f'name: "{pre}"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
               + _pbtxt_tensors("input", [image]) + _pbtxt_tensors("output", [inp])
               + ("dynamic_batching { }\n" if max_batch > 0 else "")
               + 'instance_group [ { kind: KIND_CPU } ]\n')
    (tmp / pre / "config.pbtxt").write_text(pre_cfg)
    (tmp / ens / "1").mkdir(parents=True)
    ens_cfg = (f'name: "{ens}"\nplatform: "ensemble"\nmax_batch_size: {max_batch}\n'
               + _pbtxt_tensors("input", [image]) + _pbtxt_tensors("output", [outp])
               + "ensemble_scheduling {\n  step [\n"
               f'    {{ model_name: "{pre}", model_version: -1, input_map {{ key: "IMAGE", value: "IMAGE" }}, '
               f'output_map {{ key: "{inp.name}", value: "preprocessed" }} }},\n'
               f'    {{ model_name: "{name}", model_version: -1, input_map {{ key: "{inp.name}", value: "preprocessed" }}, '
               f'output_map {{ key: "{outp.name}", value: "{outp.name}" }} }}\n'
               "  ]\n}\n")
    (tmp / ens / "config.pbtxt").write_text(ens_cfg)
    return [pre, ens]
