"""`vim-deploy triton`: a Triton Inference Server model repository from a graph or an engine."""

from __future__ import annotations

import click

from vim_deploy import log
from vim_deploy.cli.options import logging_options


@click.command("triton")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False),
              help="Graph from `vim-deploy export` (with --engine: the graph the engine was built from).")
@click.option("--engine", default=None, type=click.Path(dir_okay=False),
              help="TensorRT plan from `vim-deploy build`: the repository uses Triton's tensorrt backend.")
@click.option("--out", "out", required=True, help="Model repository folder to write (must not exist or be empty).")
@click.option("--name", default=None, help="Model name [default: the graph's model alias, e.g. vim_tiny].")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="max_batch_size [default: the engine profile's max batch, or 32 for a dynamic-batch graph].")
@click.option("--ort-ops-library", default=None, type=click.Path(dir_okay=False),
              help="libvim_ort_ops.so for plugin graphs [default: $VIM_DEPLOY_ORT_OPS_LIB, then build/].")
@click.option("--plugins", "--plugin", "plugin", default=None, help="libvim_trt_plugin.so for --engine.")
@click.option("--ensemble", is_flag=True, help="Also write a preprocessing model (Python backend: image bytes -> "
              "resize, crop, ImageNet mean / std) and an ensemble that feeds it to the model.")
@click.option("--serving-root", default=None, help="Where the repository lies on the server (library paths in the "
              "configs) [default: --out, made absolute].")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@logging_options
def triton_cmd(onnx_path, engine, out, name, max_batch, ort_ops_library, plugin, ensemble, serving_root, force):
    """Write a Triton Inference Server model repository (config.pbtxt, the model, the library it needs)."""
    from vim_deploy.serve.triton import write_repository

    log.info(f"RUNNING | triton repository {out} from {engine or onnx_path}")
    repo = write_repository(out, onnx_path, engine=engine, name=name, max_batch=max_batch, ops_library=ort_ops_library,
                            plugin=plugin, ensemble=ensemble, serving_root=serving_root, force=force)
    log.passed(f"wrote {repo.path}: models {', '.join(repo.models)} ({repo.backend} backend, max_batch_size "
               f"{repo.max_batch_size}{', library ' + repo.library if repo.library else ''})")
    click.echo("Serve it with:")
    click.echo("  " + repo.server_command)
