"""One runner per runtime, behind one interface (:class:`~vim_deploy.runtimes.base.Runner`), shared by
``vim-deploy validate`` (``infer``: host arrays in, logits out, compared apart in
:mod:`vim_deploy.validate.compare`) and ``vim-deploy bench`` (``bind`` + ``run``: a device-resident input
and one forward on it, timed by :mod:`vim_deploy.bench.timing`).

    torch.py      the PyTorch model (reference fp32, the fp16 policy, the CUDA fast path as a CUDA graph)
    onnxrt.py     a graph on ONNX Runtime (vim-deploy's op library for plugin graphs; I/O binding and
                  ORT's CUDA graph on the GPU)
    graphs.py     onnx's reference evaluator with vim-deploy's NumPy ops, and the choice of runner for a graph
    tensorrt.py   a TensorRT-family engine (UNVERIFIED on a GPU; see docs/verification.md)
    upstream.py   hustvl/Vim's own model code on mamba_ssm's kernels (the official baseline)
    deit.py       timm's DeiT (the ViT baseline)
"""

from vim_deploy.runtimes.base import Runner

__all__ = ["Runner"]
