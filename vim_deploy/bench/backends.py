"""Benchmark backends. Each builds its model for one (batch, resolution) and runs one forward.

Names: ``pytorch-fp32``, ``pytorch-fp16`` (our fp16 precision policy), ``fastpath-fp16`` (PyTorch +
our CUDA scan kernel, replayed as a CUDA graph), ``onnxruntime`` (portable graph; CUDA provider when
onnxruntime-gpu is installed), ``deit_<size>-math`` / ``deit_<size>-sdpa`` [``-fp16``] [``-graph``] (timm DeiT with plain
or fused attention; needs timm), ``official-fp16`` (hustvl/Vim's own code on mamba_ssm's kernels,
fp16 autocast, eager as its users run it; see vim_deploy/bench/upstream.py), ``tensorrt`` (an engine
built by `vim-deploy build`, run through the TensorRT runtime; UNVERIFIED on a GPU, see
vim_deploy/trt/engine_runner.py), ``ort-plugin-<fp32|fp16>[-fused][-taps|-convop|-ortops[-tokens|-hybrid|-channels]]`` (the deployed plugin graph on
onnxruntime with libvim_ort_ops.so: CUDA provider with I/O binding on device buffers and ORT's CUDA
graph on a GPU, the CPU provider otherwise).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from vim_deploy.errors import VimDeployError

VIM_BACKENDS = ("pytorch-fp32", "pytorch-fp16", "fastpath-fp16", "onnxruntime", "official-fp16", "tensorrt",
                "ort-plugin-fp32", "ort-plugin-fp16", "ort-plugin-fp32-fused", "ort-plugin-fp16-fused")
DEIT_SIZES = ("tiny", "small", "base")


class Backend:
    name = "?"
    device = "cpu"

    def prepare(self, batch: int, res: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def run(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> None:
        pass

    # Whether PyTorch's allocator sees this backend's device memory (peak = its peak + extra_device_bytes).
    tracks_memory = True

    def extra_device_bytes(self) -> int:
        """Device memory the backend holds outside PyTorch's allocator (added to the peak)."""
        return 0


_SIDE_STREAM = None


def _side_stream():
    """One side stream for every warm-up: PyTorch keeps a cuBLAS workspace (tens of MB, counted as
    allocated) per stream used, so a new stream per prepare() would pile them up over a sweep and
    inflate the peak memory of every later row."""
    global _SIDE_STREAM
    if _SIDE_STREAM is None:
        _SIDE_STREAM = torch.cuda.Stream()
    return _SIDE_STREAM


def capture_cuda_graph(forward):
    """Run ``forward`` twice on the side stream (lazy init, autotuning), then capture one call into a
    CUDA graph: a timed run is then one replay, with no per-kernel launch overhead."""
    s = _side_stream()
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(2):
            forward()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = forward()
    return graph, out


class TorchVim(Backend):
    def __init__(self, model_name: str, checkpoint: str | None, precision: str, device: str, fast: bool = False):
        self.model_name, self.checkpoint, self.precision, self.device, self.fast = (
            model_name, checkpoint, precision, device, fast)
        self.name = ("fastpath-" if fast else "pytorch-") + precision
        if fast and device != "cuda":
            raise VimDeployError("the fastpath backend needs a CUDA GPU.")
        self.graph = None

    def prepare(self, batch, res):
        from vim_deploy.models import create_model

        self.model = create_model(self.model_name, checkpoint=self.checkpoint, img_size=res)
        self.model = self.model.set_precision(self.precision).to(self.device).eval().requires_grad_(False)
        if self.fast:
            self.model.set_fast_path(True)
        self.x = torch.randn(batch, 3, res, res, device=self.device)
        self.graph = None
        if self.fast:  # CUDA graph: one replay per forward, no launch overhead
            self.graph, self.out = capture_cuda_graph(lambda: self.model(self.x))

    @torch.no_grad()
    def run(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self.model(self.x)

    def release(self):
        self.graph = self.model = self.x = self.out = None


class OrtVim(Backend):
    """The portable graph (standard ONNX ops only) on onnxruntime: CUDA provider when onnxruntime-gpu
    is installed and the device is a GPU."""

    name = "onnxruntime"
    tracks_memory = False  # onnxruntime's CUDA arena is its own: no peak to report

    def __init__(self, model_name: str, checkpoint: str | None, device: str):
        import onnxruntime as ort

        self.model_name, self.checkpoint = model_name, checkpoint
        cuda = device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
        self.device = "cuda" if cuda else "cpu"
        self.name = "onnxruntime-" + self.device
        self._tmp = tempfile.TemporaryDirectory(prefix="vim-bench-")
        self._exported: dict[int, str] = {}

    def prepare(self, batch, res):
        from vim_deploy.export import ExportConfig, export_onnx
        from vim_deploy.ort.runner import OrtRunner

        if res not in self._exported:
            path = os.path.join(self._tmp.name, f"portable_{res}.onnx")
            export_onnx(ExportConfig(model=self.model_name, output=path, checkpoint=self.checkpoint,
                                     img_size=res, scan_impl="portable", trace_device=self.device))
            self._exported[res] = path
        self.runner = OrtRunner(self._exported[res], provider=self.device)
        self.runner.bind(np.random.default_rng(0).standard_normal((batch, 3, res, res), dtype=np.float32))

    def run(self):
        self.runner.run_bound()

    def release(self):
        self.runner = None


class OrtPluginVim(Backend):
    """The plugin graph (what users deploy) on onnxruntime with vim-deploy's op library.

    On a GPU: CUDA provider, input and logits bound to device buffers (I/O binding) and ORT's CUDA
    graph, so a run is one graph replay, as the fast path's is. The graph is exported with a static
    batch per row: ORT's CUDA graph needs every node on the CUDA provider, and a dynamic batch
    leaves shape arithmetic on the CPU. If ORT still refuses the graph capture, the row runs without
    it and says so in its note.
    """

    tracks_memory = False  # onnxruntime's CUDA arena is its own

    def __init__(self, model_name: str, checkpoint: str | None, device: str, precision: str, fused: bool,
                 library: str | None = None, conv_impl: str = "conv", norm_impl: str = "ops",
                 projection_layout: str = "tokens", token_padding: int = 1, name: str | None = None):
        import onnxruntime as ort

        from vim_deploy.ort import find_ops_library

        self.library = str(find_ops_library(library))
        self.model_name, self.checkpoint, self.precision, self.fused = model_name, checkpoint, precision, fused
        self.conv_impl, self.norm_impl = conv_impl, norm_impl
        self.projection_layout, self.token_padding = projection_layout, token_padding
        self.cuda = device == "cuda"
        if self.cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VimDeployError(f"onnxruntime {ort.__version__} has no CUDA provider.",
                                 "pip install onnxruntime-gpu, or run with --device cpu.")
        self.device = "cuda" if self.cuda else "cpu"
        self.name = name or (f"ort-plugin-{precision}" + ("-fused" if fused else "")
                     + ("-ortops" if (conv_impl, norm_impl) == ("op", "op") else
                        {"taps": "-taps", "op": "-convop"}.get(conv_impl, "")))
        self._tmp = tempfile.TemporaryDirectory(prefix="vim-bench-ort-")
        self._exported: dict[tuple[int, int], str] = {}
        self.note = None

    def _export(self, batch: int, res: int) -> str:
        from vim_deploy.export import ExportConfig, export_onnx

        key = (batch, res) if self.cuda else (0, res)
        if key not in self._exported:
            path = os.path.join(self._tmp.name, f"plugin_{res}_{batch}.onnx")
            export_onnx(ExportConfig(model=self.model_name, output=path, checkpoint=self.checkpoint, img_size=res,
                                     precision=self.precision, scan_impl="plugin", fuse_bidirectional=self.fused,
                                     conv_impl=self.conv_impl, norm_impl=self.norm_impl,
                                     projection_layout=self.projection_layout, token_padding=self.token_padding,
                                     dynamic_batch=not self.cuda, batch_size=batch,
                                     trace_device=self.device))
            self._exported[key] = path
        return self._exported[key]

    def prepare(self, batch, res):
        from vim_deploy.ort.runner import OrtRunner

        path = self._export(batch, res)
        x = np.random.default_rng(0).standard_normal((batch, 3, res, res), dtype=np.float32)
        provider = "cuda" if self.cuda else "cpu"
        try:
            self.runner = OrtRunner(path, provider, self.library, plugin_graph=True, cuda_graph=self.cuda)
            self.note = None
        except VimDeployError as e:
            if not self.cuda:
                raise
            self.runner = OrtRunner(path, provider, self.library, plugin_graph=True)
            self.note = f"no ORT CUDA graph ({e.one_line()[:120]})"
        self.runner.bind(x)

    def run(self):
        self.runner.run_bound()

    def release(self):
        self.runner = None


class OfficialVim(Backend):
    """hustvl/Vim's models_mamba on mamba_ssm / causal-conv1d kernels under fp16 autocast."""

    name = "official-fp16"

    def __init__(self, model_name: str, device: str, upstream: str | None = None):
        from vim_deploy.bench.upstream import load_models_mamba, official_name

        if device != "cuda":
            raise VimDeployError("the official backend needs a CUDA GPU (mamba_ssm's kernels).")
        self.official = official_name(model_name)
        self.models_mamba, self.conv_impl = load_models_mamba(upstream)
        self.device = device

    def prepare(self, batch, res):
        self.model = getattr(self.models_mamba, self.official)(img_size=res).to(self.device).eval().requires_grad_(False)
        self.x = torch.randn(batch, 3, res, res, device=self.device)

    @torch.no_grad()
    def run(self):
        with torch.autocast("cuda", dtype=torch.float16):
            self.model(self.x)

    def release(self):
        self.model = self.x = None


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
        self.runner = None

    def prepare(self, batch, res):
        from vim_deploy.trt.engine_runner import EngineRunner

        built = self.side.get("onnx_metadata", {}).get("img_size")
        if built is not None and int(built) != res:
            raise VimDeployError(f"the engine was built for {built}px, not {res}px.")
        if self.runner is None:
            self.runner = EngineRunner(self.engine, self.plugin)
        self.x = torch.randn(batch, 3, res, res, device="cuda").to(self.runner.input_dtype())
        self.runner.bind(self.x)

    def run(self):
        self.runner.launch()

    def extra_device_bytes(self):
        return self.runner.device_memory_bytes() if self.runner is not None else 0

    def release(self):
        self.x = None


class TimmDeiT(Backend):
    """timm's DeiT as the ViT baseline: plain (math) or fused (SDPA / flash) attention, fp32 or fp16
    autocast, eager or replayed as a CUDA graph (``-graph``: kernels compared without launch overhead,
    as the fast path is timed)."""

    def __init__(self, size: str, fused: bool, device: str, fp16: bool, graph: bool = False):
        try:
            import timm  # noqa: F401
        except Exception as e:  # noqa: BLE001  (timm's torchvision import can fail in odd ways)
            raise VimDeployError(f"DeiT baselines need timm ({type(e).__name__}: {str(e)[:80]}).",
                                 "Install the timm extra: pip install 'vim-deploy[timm]' (it needs a torchvision matching your torch).") from None
        if graph and device != "cuda":
            raise VimDeployError("the -graph DeiT backends need a CUDA GPU.")
        self.size, self.fused, self.device, self.fp16, self.use_graph = size, fused, device, fp16, graph
        self.name = f"deit_{size}-{'sdpa' if fused else 'math'}" + ("-fp16" if fp16 else "") + ("-graph" if graph else "")
        self.graph = None

    def prepare(self, batch, res):
        import timm
        from timm.layers import set_fused_attn

        set_fused_attn(self.fused)
        self.model = timm.create_model(f"deit_{self.size}_patch16_224", pretrained=False, img_size=res)
        self.model = self.model.to(self.device).eval().requires_grad_(False)
        self.x = torch.randn(batch, 3, res, res, device=self.device)
        self.graph = None
        if self.use_graph:
            self.graph, self.out = capture_cuda_graph(self._forward)

    def _forward(self):
        with torch.autocast(self.device, dtype=torch.float16, enabled=self.fp16 and self.device == "cuda"):
            return self.model(self.x)

    @torch.no_grad()
    def run(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self._forward()

    def release(self):
        self.model = self.x = self.graph = self.out = None


def make_backend(name: str, model: str, checkpoint: str | None, device: str, engine: str | None = None,
                 plugin: str | None = None, upstream: str | None = None, ort_ops_library: str | None = None) -> Backend:
    if name in ("pytorch-fp32", "pytorch-fp16"):
        return TorchVim(model, checkpoint, name.split("-")[1], device)
    if name == "fastpath-fp16":
        return TorchVim(model, checkpoint, "fp16", device, fast=True)
    if name == "onnxruntime":
        return OrtVim(model, checkpoint, device)
    if name == "official-fp16":
        return OfficialVim(model, device, upstream)
    if name.startswith("ort-plugin-"):
        parts = name[len("ort-plugin-"):].split("-")
        rest = parts[1:]
        fused = rest[:1] == ["fused"]
        conv = rest[1:] if fused else rest
        if parts[0] not in ("fp32", "fp16") or conv not in ([], ["taps"], ["convop"], ["ortops"], ["ortops", "tokens"],
                                                           ["ortops", "hybrid"], ["ortops", "channels"]):
            raise VimDeployError(f"unknown backend '{name}'.", "onnxruntime plugin-graph backends: "
                                 "ort-plugin-<fp32|fp16>[-fused][-taps|-convop|-ortops[-tokens|-hybrid|-channels]].")
        form = conv[0] if conv else ""
        if form == "ortops":  # the graph `export --ort-optimized` writes (its padding; its layout unless named)
            from vim_deploy.export.onnx_export import ORT_OPTIMIZED_LAYOUT, ORT_OPTIMIZED_PADDING

            return OrtPluginVim(model, checkpoint, device, parts[0], fused=fused, library=ort_ops_library,
                                conv_impl="op", norm_impl="op", token_padding=ORT_OPTIMIZED_PADDING, name=name,
                                projection_layout=conv[1] if conv[1:] else ORT_OPTIMIZED_LAYOUT)
        return OrtPluginVim(model, checkpoint, device, parts[0], fused=fused, library=ort_ops_library,
                            conv_impl={"taps": "taps", "convop": "op"}.get(form, "conv"))
    if name == "tensorrt":
        return TrtEngine(engine, plugin, device)
    if name.startswith("deit_"):
        parts = name.split("-")
        size = parts[0][len("deit_"):]
        flags = parts[2:]
        if (size not in DEIT_SIZES or len(parts) < 2 or parts[1] not in ("math", "sdpa")
                or flags not in ([], ["fp16"], ["graph"], ["fp16", "graph"])):
            raise VimDeployError(f"unknown backend '{name}'.",
                                 "DeiT backends: deit_<tiny|small|base>-<math|sdpa>[-fp16][-graph].")
        return TimmDeiT(size, parts[1] == "sdpa", device, fp16="fp16" in flags, graph="graph" in flags)
    raise VimDeployError(f"unknown backend '{name}'.",
                         f"Known: {', '.join(VIM_BACKENDS)}, deit_<tiny|small|base>-<math|sdpa>[-fp16][-graph].")
