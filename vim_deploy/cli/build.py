"""`vim-deploy build`: ONNX -> TensorRT engine (TensorRT 10/11, or TensorRT-RTX)."""

from __future__ import annotations


import click

from vim_deploy import log
from vim_deploy.cli.options import Progress, logging_options
from vim_deploy.errors import VimDeployError
from vim_deploy.io_utils import dumps_json, atomic_write_text, check_writable
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


def _pool_limit_mib(value: str) -> int:
    """'workspace:512M' (trtexec --memPoolSize, polygraphy --pool-limit; K / M / G, MiB without a suffix) -> 512."""
    pool, _, size = value.partition(":")
    scale = {"K": 1 / 1024, "M": 1, "G": 1024}
    unit = size[-1:].upper()
    try:
        mib = float(size[:-1]) * scale[unit] if unit in scale else float(size)
    except ValueError:
        mib = -1
    if pool != "workspace" or mib <= 0:
        raise click.BadParameter(f"use workspace:<size>[K|M|G], e.g. workspace:512M (got {value!r})",
                                 param_hint="--memPoolSize")
    return max(1, int(mib))


@click.command("build")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Graph from `vim-deploy export`.")
@click.option("--output", "-o", default=None, help="Engine file [default: <onnx stem>.plan].")
@click.option("--plugins", "--plugin", "plugin", default=None, help="libvim_trt_plugin.so [default: $VIM_DEPLOY_PLUGIN_LIB, $VIM_DEPLOY_LIB_DIR, the checkout's build/, "
              "~/.local/share/vim-deploy/build].")
@click.option("--batch", default="1:8:32", show_default=True, callback=_parse_batch, help="Optimization profile MIN:OPT:MAX.")
@click.option("--fp16", is_flag=True, help="fp16 via builder flag (weakly typed TensorRT 10 only; TensorRT 11 takes "
              "precision from the ONNX: export with --precision fp16).")
@click.option("--workspace", "workspace_mib", type=int, default=None,
              help="Workspace pool limit in MiB (also as trtexec's --memPoolSize / polygraphy's --pool-limit workspace:<N>M).")
@click.option("--memPoolSize", "--pool-limit", "pool_limit", default=None, metavar="workspace:<N>[K|M|G]",
              help="trtexec / polygraphy spelling of --workspace.")
@click.option("--timing-cache", default=None, help="Timing cache file (read if present, written after the build).")
@click.option("--hardware-compatibility", "--hardwareCompatibilityLevel", "hardware_compatibility",
              type=click.Choice(["ampere+", "ampere_plus"]), default=None,
              help="Engine that runs on any Ampere-or-newer GPU (TensorRT 10+).")
@click.option("--version-compatible", is_flag=True, help="Version-compatible engine with the plugin library serialized in.")
@click.option("--report-json", default=None, help="Write the build report (JSON).")
@click.option("--target", default=None, help="Print the recipe for a Jetson / TensorRT target instead of building: "
              "jetpack-5.1 (TensorRT 8.5), jetpack-6.0 (8.6), jetpack-6.1 (10.3; also 6.2), jetpack-7 (10.13+), "
              "jetpack-7.2 (11.4.1, JetPack 7.2.2+), tensorrt-11. Implies --print-only.")
@click.option("--print-only", is_flag=True, help="Print the trtexec / polygraphy lines and build nothing (no TensorRT needed).")
@logging_options
def build_cmd(onnx_path, output, plugin, batch, fp16, workspace_mib, pool_limit, timing_cache, hardware_compatibility,
              version_compatible, report_json, target, print_only):
    """Build a TensorRT engine; prints the equivalent trtexec and polygraphy commands (e.g. for Jetson)."""
    if pool_limit is not None:
        mib = _pool_limit_mib(pool_limit)
        if workspace_mib is not None and workspace_mib != mib:
            raise click.BadParameter(f"{pool_limit} disagrees with --workspace {workspace_mib}", param_hint="--memPoolSize")
        workspace_mib = mib
    if hardware_compatibility == "ampere_plus":
        hardware_compatibility = "ampere+"
    output = output or str(onnx_path).rsplit(".", 1)[0] + ".plan"
    if target or print_only:
        if fp16 and target and jetpack_major(target) >= 11:
            raise VimDeployError(f"--fp16 does not exist on {target}: TensorRT 11 builds strongly typed networks only.",
                                 "Export the graph with `vim-deploy export --precision fp16` and build it without --fp16.")
        _print_recipe(onnx_path, output, plugin, batch, target)
        return
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
    if report_json:
        atomic_write_text(report_json, dumps_json(rep))


def jetpack_major(target_name: str) -> int:
    from vim_deploy.trt import jetpack

    return jetpack.target(target_name).major


def _print_recipe(onnx_path, output, plugin, batch, target_name):
    """The commands that build this graph's engine on a target, without TensorRT on this machine."""
    from vim_deploy.trt import jetpack
    import onnx

    from vim_deploy.trt.engine_build import read_onnx_input, refuse_ort_only_nodes

    input_name, dims, meta = read_onnx_input(onnx_path)
    refuse_ort_only_nodes(onnx_path, meta)  # what build refuses, the printed recipe refuses too
    opset = next((o.version for o in onnx.load(onnx_path, load_external_data=False).opset_import
                  if o.domain in ("", "ai.onnx")), None)
    if not meta.get("_scan_nodes"):
        log.warning("the graph has no scan nodes (a portable export?): it needs no plugin.")
    plugin = plugin or "libvim_trt_plugin.so"
    names = [target_name] if target_name else list(jetpack.TARGETS)
    for name in names:
        t = jetpack.target(name)
        cmds = jetpack.commands(t, onnx_path, output, plugin, input_name, dims, batch)
        where = f"JetPack {t.jetpack}, " if t.name.startswith("jetpack") else ""
        click.echo(f"# {t.name}: {where}TensorRT {t.tensorrt}, {t.gpus}; plugin adapter {t.adapter}")
        click.echo(f"#   export: vim-deploy export {t.export_flags} (this graph: {meta.get('precision', '?')}, "
                   f"opset {opset})")
        if t.major < 9 and opset and opset > 17:
            log.warning(f"{t.name}: TensorRT {t.tensorrt}'s ONNX parser reads opsets <= 17; re-export with --opset 17.")
        click.echo(f"#   plugin: {jetpack.build_plugin_line(t)}")
        click.echo(cmds["trtexec"])
        click.echo(cmds["polygraphy"])
