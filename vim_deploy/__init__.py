"""vim-deploy: Vision Mamba (Vim) to ONNX and TensorRT, with parity validation and benchmarks."""

__version__ = "0.1.0"

from vim_deploy.errors import VimDeployError  # noqa: E402

__all__ = ["VimDeployError", "__version__"]
