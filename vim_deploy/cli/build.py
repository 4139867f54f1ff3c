"""`vim-deploy build`: ONNX -> TensorRT engine (TensorRT 10/11, or TensorRT-RTX)."""

from __future__ import annotations

import json

import click

from vim_deploy import log
from vim_deploy.cli.options import Progress, logging_options
from vim_deploy.errors import VimDeployError
from vim_deploy.io_utils import atomic_write_text, check_writable
from vim_deploy.trt.engine_build import BuildConfig, build_engine


def _parse_batch(ctx, param, value: str):
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        raise click.BadParameter("use MIN:OPT:MAX, e.g. 1:8:32") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not (1 <= parts[0] <= parts[1] <= parts[2]):
        raise click.BadParameter("use MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:8:32")
    return tuple(parts)


@click.command("build")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Graph from `vim-deploy export`.")
@click.option("--output", "-o", default=None, help="Engine file [default: <onnx stem>.plan].")
@click.option("--plugin", default=None, help="libvim_trt_plugin.so [default: $VIM_DEPLOY_PLUGIN_LIB or ./build].")
@click.option("--batch", default="1:8:32", show_default=True, callback=_parse_batch, help="Optimization profile MIN:OPT:MAX.")
@click.option("--fp16", is_flag=True, help="fp16 via builder flag (weakly typed TensorRT 10 only; TensorRT 11 takes "
              "precision from the ONNX: export with --precision fp16).")
@click.option("--workspace", "workspace_mib", type=int, default=None, help="Workspace pool limit in MiB.")
@click.option("--timing-cache", default=None, help="Timing cache file (read if present, written after the build).")
@click.option("--hardware-compatibility", type=click.Choice(["ampere+"]), default=None,
              help="Engine that runs on any Ampere-or-newer GPU (TensorRT 10+).")
@click.option("--version-compatible", is_flag=True, help="Version-compatible engine with the plugin library serialized in.")
@click.option("--report-json", default=None, help="Write the build report (JSON).")
@logging_options
def build_cmd(onnx_path, output, plugin, batch, fp16, workspace_mib, timing_cache, hardware_compatibility,
              version_compatible, report_json):
    """Build a TensorRT engine; prints the equivalent trtexec and polygraphy commands (e.g. for Jetson)."""
    output = output or str(onnx_path).rsplit(".", 1)[0] + ".plan"
    if report_json:
        check_writable(report_json)
    if workspace_mib is not None and workspace_mib <= 0:
        raise VimDeployError("--workspace must be a positive number of MiB.")
    cfg = BuildConfig(onnx=onnx_path, output=output, plugin=plugin, batch=batch, fp16=fp16, workspace_mib=workspace_mib,
                      timing_cache=timing_cache, hardware_compatibility=hardware_compatibility,
                      version_compatible=version_compatible)
    log.info(f"RUNNING | build {onnx_path} -> {output}")
    rep = build_engine(cfg, progress=Progress())
    log.passed(f"wrote {rep['plan']} ({rep['plan_bytes'] / 2**20:.1f} MiB, {rep['layers']} layers, "
               f"{rep['plugin_layers']} plugin layers, {rep['backend']} {rep['backend_version']}) | Runtime: {rep['seconds']}s")
    click.echo("Equivalent commands (run them where TensorRT lives, e.g. on a Jetson with the plugin built there):")
    click.echo("  " + rep["equivalent_commands"]["trtexec"])
    click.echo("  " + rep["equivalent_commands"]["polygraphy"])
    from vim_deploy.trt.engine_runner import sidecar_path

    atomic_write_text(str(sidecar_path(output)), json.dumps(rep, indent=2) + "\n")  # read by `validate --engine`
    if report_json:
        atomic_write_text(report_json, json.dumps(rep, indent=2) + "\n")
