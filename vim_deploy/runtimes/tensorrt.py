"""A serialized engine (TensorRT 10/11 Python API) as a runner, on PyTorch CUDA buffers.

UNVERIFIED: no TensorRT engine has executed on a GPU yet. The code follows the documented TensorRT 10
API (deserialize_cuda_engine, set_input_shape, set_tensor_address, execute_async_v3); its error paths are
tested on the CPU. TensorRT-RTX 1.7 builds plans but its runtime refuses Hopper (compute capability 9.0;
docs/verification.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vim_deploy.errors import VimDeployError
from vim_deploy.runtimes.base import Runner
from vim_deploy.trt.backend import check_runtime_supports_gpu, import_backend, make_logger

_TRT_TO_TORCH = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT32": "int32", "INT64": "int64"}


class EngineRunner(Runner):
    """A TensorRT-family engine with our plugin library loaded (``plugin``)."""

    def __init__(self, plan: str, plugin: str | None = None):
        import torch

        if not Path(plan).is_file():
            raise VimDeployError(f"engine '{plan}' does not exist.")
        if not torch.cuda.is_available():
            raise VimDeployError("running a TensorRT engine needs a CUDA GPU; PyTorch sees none.")
        trt = import_backend()
        check_runtime_supports_gpu(trt, torch.cuda.get_device_capability())
        self.trt, self.torch = trt, torch
        self.logger = make_logger(trt)
        if plugin:
            trt.get_plugin_registry().load_library(plugin)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise VimDeployError(f"{trt.__name__} {trt.__version__} could not deserialize '{plan}'.",
                                 "Engines only run on the TensorRT version (and GPU) they were built for, with "
                                 "the plugin library loaded (--plugin).")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == mode.OUTPUT]
        self.name = f"{trt.__name__}-engine"
        self.device = "cuda"

    def _torch_dtype(self, name: str):
        key = str(self.engine.get_tensor_dtype(name)).split(".")[-1]
        return getattr(self.torch, _TRT_TO_TORCH.get(key, "float32"))

    def input_dtype(self):
        return self._torch_dtype(self.inputs[0])

    def bind(self, x) -> None:
        """Set the input shape and the tensor addresses for an input (a CUDA tensor, or host images copied
        to one in the engine's input type); outputs are allocated here."""
        torch = self.torch
        xt = x if isinstance(x, torch.Tensor) else torch.from_numpy(x).cuda().to(self.input_dtype()).contiguous()
        inp = self.inputs[0]
        self.context.set_input_shape(inp, tuple(xt.shape))
        self.context.set_tensor_address(inp, xt.data_ptr())
        self.outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            self.outs[name] = torch.empty(shape, dtype=self._torch_dtype(name), device="cuda")
            self.context.set_tensor_address(name, self.outs[name].data_ptr())
        self._bound = xt  # keep the input alive while its address is set

    def run(self) -> None:
        """Enqueue one inference on PyTorch's current stream (no synchronization)."""
        if not self.context.execute_async_v3(self.torch.cuda.current_stream().cuda_stream):
            raise VimDeployError("TensorRT failed to execute the engine (see the messages above).")

    def extra_device_bytes(self) -> int:
        """Activation memory TensorRT allocates for an execution context (outside PyTorch's allocator)."""
        for attr in ("device_memory_size_v2", "device_memory_size"):
            if hasattr(self.engine, attr):
                return int(getattr(self.engine, attr))
        return 0

    def output(self):
        self.torch.cuda.current_stream().synchronize()
        return self.outs[self.outputs[0]].float().cpu().numpy() if getattr(self, "outs", None) else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.bind(x)
        self.run()
        self.torch.cuda.current_stream().synchronize()
        return self.outs[self.outputs[0]].float().cpu().numpy()

    def release(self) -> None:
        self.outs = self._bound = None


def polygraphy_recipe(onnx_portable: str, plan: str, plugin: str | None, atol: float, rtol: float) -> str:
    """Commands that reproduce the engine comparison with polygraphy alone."""
    plug = f" --plugins {plugin}" if plugin else ""
    return (f"polygraphy run {onnx_portable} --onnxrt --save-inputs inputs.json --save-outputs ref_outputs.json && "
            f"polygraphy run {plan} --model-type engine --trt{plug} --load-inputs inputs.json "
            f"--load-outputs ref_outputs.json --atol {atol} --rtol {rtol}")
