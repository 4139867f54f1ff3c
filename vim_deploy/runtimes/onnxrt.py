"""A graph on ONNX Runtime as a runner (plugin graphs with vim-deploy's op library, others as they are).

``infer(x)`` maps a float32 NCHW batch to float32 logits (comparisons); ``bind(x)`` + ``run()`` time a
fixed input without host copies: on the CUDA provider the input and the logits live in device buffers
bound with I/O binding, and ORT's CUDA graph replays the whole forward when asked.
"""

from __future__ import annotations

import numpy as np

from vim_deploy.errors import VimDeployError
from vim_deploy.runtimes.base import Runner


class OrtRunner(Runner):
    """A graph on onnxruntime: plugin graphs with vim-deploy's op library, others as they are."""

    def __init__(self, path: str, provider: str | None = None, ops_library=None, plugin_graph: bool = False,
                 cuda_graph: bool = False, tf32: bool = False, cuda_options: dict | None = None):
        import onnxruntime as ort

        from vim_deploy.ort.session import create_session, find_ops_library

        if provider not in (None, "cpu", "cuda"):
            raise VimDeployError(f"unknown onnxruntime provider '{provider}'.", "Use cpu or cuda.")
        if provider is None:  # graphs without custom nodes: the GPU when onnxruntime has one
            provider = "cuda" if (not plugin_graph and "CUDAExecutionProvider" in ort.get_available_providers()) else "cpu"
        lib = find_ops_library(ops_library) if plugin_graph else None
        self.session = create_session(path, provider, lib, cuda_graph=cuda_graph, tf32=tf32, with_ops=plugin_graph,
                                      cuda_options=cuda_options)
        self.provider = provider
        self.device = "cuda" if provider == "cuda" else "cpu"
        self.cuda_graph = cuda_graph
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.name = f"onnxruntime-{provider}" + ("+vim-ops" if plugin_graph else "")
        self.tracks_memory = False  # ORT's CUDA arena is its own: no peak to report
        self._binding = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.cuda_graph:
            raise VimDeployError("a CUDA-graph session runs only on bound buffers.", "Use bind() and run().")
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32)

    def bind(self, x: np.ndarray) -> None:
        """Fix the input for run(): device buffers + I/O binding on CUDA, a feed dict on the CPU."""
        import onnxruntime as ort

        if self.device != "cuda":
            self._feed = {self.input_name: x}
            return
        self._x = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        classes = self.session.get_outputs()[0].shape[-1]
        self._y = ort.OrtValue.ortvalue_from_shape_and_type((x.shape[0], classes), np.float32, "cuda", 0)
        self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input(self.input_name, self._x)
        self._binding.bind_ortvalue_output(self.output_name, self._y)

    def run(self) -> None:
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding)  # returns after ORT synchronized its stream
        else:
            self._out = self.session.run(None, self._feed)[0]

    def output(self):
        if self._binding is not None:
            return self._y.numpy()
        return getattr(self, "_out", None)

    def release(self) -> None:
        self.session = self._binding = self._x = self._y = self._feed = None
