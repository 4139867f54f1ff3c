"""`vim-deploy plugin`: build the CUDA kernel library and the TensorRT plugin."""

from __future__ import annotations

import click

from vim_deploy import log
from vim_deploy.cli.options import logging_options
from vim_deploy.native.paths import KERNELS_LIB, ORT_OPS_LIB, PLUGIN_LIB, default_build_dir
from vim_deploy.native.build import build_native


@click.group("plugin")
def plugin_group():
    """Native code: the selective-scan CUDA core and its TensorRT plugin."""


@plugin_group.command("build")
@click.option("--build-dir", default=None, help="CMake build folder and output [default: $VIM_DEPLOY_LIB_DIR, else "
              "build/ of a source checkout, else ~/.local/share/vim-deploy/build; where the libraries are looked for].")
@click.option("--tensorrt-root", default=None,
              help="TensorRT folder with include/NvInferRuntime.h [default: TensorRT_ROOT, TENSORRT_INCLUDE_DIR, "
                   "system include folders, a tensorrt pip wheel]. Without headers only the kernel library is built.")
@click.option("--onnxruntime-include", default=None, envvar="ONNXRUNTIME_INCLUDE_DIR",
              help="Folder with ONNX Runtime's onnxruntime_c_api.h, for libvim_ort_ops.so "
                   "[default: $ONNXRUNTIME_INCLUDE_DIR, $ONNXRUNTIME_ROOT/include, /usr/include/onnxruntime].")
@click.option("--cuda-archs", default=None,
              help="CMAKE_CUDA_ARCHITECTURES, e.g. '87-real' for Jetson Orin or '90-real' for Hopper, or 'all': every "
                   "deployment target nvcc supports of 72;75;80;86;87;89;90;100;110;120 plus PTX of the newest (minutes "
                   "per architecture) [default: the GPUs present; without one, nvcc's default target with its PTX].")
@click.option("--werror", is_flag=True, help="Treat compiler warnings in our sources as errors.")
@logging_options
def build_cmd(build_dir, tensorrt_root, onnxruntime_include, cuda_archs, werror):
    """Compile libvim_kernels.so (needs nvcc), libvim_trt_plugin.so (also TensorRT headers) and
    libvim_ort_ops.so (ONNX Runtime headers; its CUDA kernel needs nvcc)."""
    log.info(f"RUNNING | plugin build into {build_dir or default_build_dir()}")
    built = build_native(build_dir, tensorrt_root, cuda_archs, werror, echo=log.info,
                         onnxruntime_include=onnxruntime_include)
    if built[KERNELS_LIB]:
        log.passed(f"{KERNELS_LIB}: {built[KERNELS_LIB]}")
    else:
        log.warning(f"{KERNELS_LIB} was NOT built: no nvcc.")
    if built[ORT_OPS_LIB]:
        log.passed(f"{ORT_OPS_LIB}: {built[ORT_OPS_LIB]} (onnxruntime: SessionOptions.register_custom_ops_library; "
                   "see vim_deploy.ort.create_session)")
    else:
        log.warning(f"{ORT_OPS_LIB} was NOT built: ONNX Runtime headers not found. Pass --onnxruntime-include.")
    if built[PLUGIN_LIB]:
        log.passed(f"{PLUGIN_LIB}: {built[PLUGIN_LIB]} (load it with trtexec --dynamicPlugins=..., "
                   "polygraphy --plugins ..., or IPluginRegistry.load_library)")
    else:
        log.warning(f"{PLUGIN_LIB} was NOT built: TensorRT headers not found. Pass --tensorrt-root.")
