"""Benchmark backends: each makes a runner (vim_deploy.runtimes) for one (batch, resolution).

Names are ``<runtime>-<precision>[-<form>]``:

* ``pytorch-fp32``, ``pytorch-fp16``: the PyTorch model (fp16: the deployment precision policy);
* ``fastpath-fp16``: PyTorch on our CUDA kernels, replayed as a CUDA graph;
* ``onnxruntime-<fp32|fp16>[-<form>]``: the graph ``vim-deploy export --form <form>`` writes (default
  ``plain``), on ONNX Runtime: plugin forms with libvim_ort_ops.so (CUDA provider with I/O binding and ORT's
  CUDA graph on a GPU, the CPU provider otherwise), ``function`` / ``portable`` on ONNX Runtime alone;
  ``onnxruntime`` is ``onnxruntime-fp32-portable``;
* ``official-fp16``: hustvl/Vim's own code on mamba_ssm's kernels (vim_deploy/runtimes/upstream.py);
* ``tensorrt``: an engine from ``vim-deploy build`` at the resolution it was built for (UNVERIFIED on a GPU);
* ``deit_<tiny|small|base>-<math|sdpa>[-fp16][-graph]``: timm's DeiT (optional extra).
"""

from __future__ import annotations

import os
import tempfile

from vim_deploy.errors import VimDeployError
from vim_deploy.export.forms import PRESETS, preset
from vim_deploy.runtimes.deit import DEIT_SIZES

VIM_BACKENDS = ("pytorch-fp32", "pytorch-fp16", "fastpath-fp16", "official-fp16", "tensorrt",
                "onnxruntime-<fp32|fp16>[-<form>]")
ORT_PRECISIONS = ("fp32", "fp16")


class Backend:
    """A named way to run the model; ``runner(batch, res)`` builds what it needs for that shape."""

    name = "?"
    device = "cpu"

    def runner(self, batch: int, res: int):  # pragma: no cover - interface
        raise NotImplementedError


class TorchVim(Backend):
    def __init__(self, model_name: str, checkpoint: str | None, precision: str, device: str, fast: bool = False):
        if fast and device != "cuda":
            raise VimDeployError("the fastpath backend needs a CUDA GPU.")
        self.model_name, self.checkpoint, self.precision, self.device, self.fast = (
            model_name, checkpoint, precision, device, fast)
        self.name = ("fastpath-" if fast else "pytorch-") + precision

    def runner(self, batch, res):
        from vim_deploy.models import create_model
        from vim_deploy.runtimes.torch import TorchRunner

        model = create_model(self.model_name, checkpoint=self.checkpoint, img_size=res)
        return TorchRunner(model, self.precision, self.device, fast=self.fast)


class OrtGraph(Backend):
    """A graph form on ONNX Runtime. Plugin forms run with vim-deploy's op library; on a GPU each row's graph
    is exported with a static batch (ORT's CUDA graph needs every node on the CUDA provider, and a dynamic
    batch leaves shape arithmetic on the CPU); if ORT still refuses the capture, the row runs without it
    and says so in its note."""

    def __init__(self, model_name: str, checkpoint: str | None, device: str, precision: str, form_name: str,
                 library: str | None = None, name: str | None = None):
        import onnxruntime as ort

        self.form = preset(form_name)
        self.plugin = self.form.scan_impl == "plugin"
        self.library = None
        if self.plugin:
            from vim_deploy.ort import find_ops_library

            self.library = str(find_ops_library(library))
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device == "cuda" and self.plugin and not has_cuda:
            raise VimDeployError(f"onnxruntime {ort.__version__} has no CUDA provider.",
                                 "pip install onnxruntime-gpu, or run with --device cpu.")
        self.cuda = device == "cuda" and has_cuda
        self.device = "cuda" if self.cuda else "cpu"
        self.model_name, self.checkpoint, self.precision = model_name, checkpoint, precision
        self.name = name or f"onnxruntime-{precision}" + ("" if form_name == "plain" else f"-{form_name}")
        self._tmp = tempfile.TemporaryDirectory(prefix="vim-bench-ort-")
        self._exported: dict[tuple[int, int], str] = {}

    def _export(self, batch: int, res: int) -> str:
        from vim_deploy.export import ExportConfig, export_onnx

        static = self.cuda and self.plugin
        key = (batch if static else 0, res)
        if key not in self._exported:
            path = os.path.join(self._tmp.name, f"{self.form.name}_{res}_{key[0]}.onnx")
            export_onnx(ExportConfig(model=self.model_name, output=path, checkpoint=self.checkpoint, img_size=res,
                                     precision=self.precision, form=self.form, dynamic_batch=not static,
                                     batch_size=batch, trace_device=self.device))
            self._exported[key] = path
        return self._exported[key]

    def runner(self, batch, res):
        from vim_deploy.runtimes.onnxrt import OrtRunner

        path = self._export(batch, res)
        if not self.plugin:
            return OrtRunner(path, provider=self.device)
        try:
            return OrtRunner(path, self.device, self.library, plugin_graph=True, cuda_graph=self.cuda)
        except VimDeployError as e:
            if not self.cuda:
                raise
            r = OrtRunner(path, self.device, self.library, plugin_graph=True)
            r.note = f"no ORT CUDA graph ({e.one_line()[:120]})"
            return r


class OfficialVim(Backend):
    """hustvl/Vim's models_mamba on mamba_ssm / causal-conv1d kernels under fp16 autocast."""

    name = "official-fp16"

    def __init__(self, model_name: str, device: str, upstream: str | None = None):
        from vim_deploy.runtimes.upstream import load_models_mamba, official_name

        if device != "cuda":
            raise VimDeployError("the official backend needs a CUDA GPU (mamba_ssm's kernels).")
        official_name(model_name)
        load_models_mamba(upstream)  # fail fast: a missing checkout or extension is one line before the sweep
        self.model_name, self.device, self.upstream = model_name, device, upstream

    def runner(self, batch, res):
        from vim_deploy.runtimes.upstream import OfficialRunner

        return OfficialRunner(self.model_name, res, self.device, self.upstream)


class TrtEngine(Backend):
    """A serialized TensorRT engine (`vim-deploy build`) at the resolution it was built for."""

    name = "tensorrt"

    def __init__(self, engine: str | None, plugin: str | None, device: str):
        from vim_deploy.trt.sidecar import read_sidecar

        if not engine:
            raise VimDeployError("the tensorrt backend needs an engine.", "Pass --engine <plan> (vim-deploy build).")
        if not os.path.isfile(engine):
            raise VimDeployError(f"engine '{engine}' does not exist.")
        self.side = read_sidecar(engine)  # the resolution it was built for
        if device != "cuda":
            raise VimDeployError("the tensorrt backend needs a CUDA GPU.")
        self.engine, self.plugin, self.device = engine, plugin, device
        self._runner = None

    def runner(self, batch, res):
        from vim_deploy.runtimes.tensorrt import EngineRunner

        built = self.side.get("onnx_metadata", {}).get("img_size")
        if built is not None and int(built) != res:
            raise VimDeployError(f"the engine was built for {built}px, not {res}px.")
        if self._runner is None:  # one deserialized engine for every batch of the profile
            self._runner = EngineRunner(self.engine, self.plugin)
        return self._runner


class TimmDeiT(Backend):
    def __init__(self, size: str, fused: bool, device: str, fp16: bool, graph: bool = False):
        from vim_deploy.runtimes.deit import import_timm

        import_timm()
        if graph and device != "cuda":
            raise VimDeployError("the -graph DeiT backends need a CUDA GPU.")
        self.size, self.fused, self.device, self.fp16, self.graph = size, fused, device, fp16, graph
        self.name = f"deit_{size}-{'sdpa' if fused else 'math'}" + ("-fp16" if fp16 else "") + ("-graph" if graph else "")

    def runner(self, batch, res):
        from vim_deploy.runtimes.deit import DeiTRunner

        return DeiTRunner(self.size, self.fused, self.device, self.fp16, res, graph=self.graph)


def _unknown(name: str) -> VimDeployError:
    return VimDeployError(f"unknown backend '{name}'.",
                          f"Known: pytorch-fp32, pytorch-fp16, fastpath-fp16, official-fp16, tensorrt, "
                          f"onnxruntime-<fp32|fp16>[-<form>] (forms: {', '.join(PRESETS)}), "
                          "deit_<tiny|small|base>-<math|sdpa>[-fp16][-graph].")


def make_backend(name: str, model: str, checkpoint: str | None, device: str, engine: str | None = None,
                 plugin: str | None = None, upstream: str | None = None, ort_ops_library: str | None = None) -> Backend:
    if name in ("pytorch-fp32", "pytorch-fp16"):
        return TorchVim(model, checkpoint, name.split("-")[1], device)
    if name == "fastpath-fp16":
        return TorchVim(model, checkpoint, "fp16", device, fast=True)
    if name == "official-fp16":
        return OfficialVim(model, device, upstream)
    if name == "onnxruntime" or name.startswith("onnxruntime-"):
        parts = (name + "-fp32-portable" if name == "onnxruntime" else name).split("-", 2)
        precision = parts[1]
        form = parts[2] if len(parts) > 2 else "plain"
        if precision not in ORT_PRECISIONS or form not in PRESETS:
            raise _unknown(name)
        return OrtGraph(model, checkpoint, device, precision, form, ort_ops_library, name=name)
    if name == "tensorrt":
        return TrtEngine(engine, plugin, device)
    if name.startswith("deit_"):
        parts = name.split("-")
        size = parts[0][len("deit_"):]
        flags = parts[2:]
        if (size not in DEIT_SIZES or len(parts) < 2 or parts[1] not in ("math", "sdpa")
                or flags not in ([], ["fp16"], ["graph"], ["fp16", "graph"])):
            raise _unknown(name)
        return TimmDeiT(size, parts[1] == "sdpa", device, fp16="fp16" in flags, graph="graph" in flags)
    raise _unknown(name)
