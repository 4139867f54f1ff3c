"""ONNX -> serialized TensorRT engine, through whichever TensorRT-family package is installed.

The TensorRT-family package comes from :mod:`vim_deploy.trt.backend`. Our plugin library is loaded into
the builder's plugin registry, the ONNX parser maps each ``VimSelectiveScan`` node to it.

Precision: the exported ONNX carries it (``vim-deploy export --precision fp16``). Networks are built
strongly typed where the backend supports it (TensorRT 11 and TensorRT-RTX always are), so the
engine computes what the ONNX says. ``fp16=True`` on an fp32 ONNX is only possible with a weakly
typed TensorRT 10 network (builder flag); elsewhere it is refused with what to do instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from vim_deploy.errors import VimDeployError
from vim_deploy.io_utils import atomic_write_bytes, atomic_write_text, check_writable, dumps_json
from vim_deploy.ops import schema
from vim_deploy.trt import recipes
from vim_deploy.trt.backend import import_backend, make_logger
from vim_deploy.trt.sidecar import sidecar_path

@dataclass
class BuildConfig:
    onnx: str
    output: str
    plugin: str | None = None
    batch: tuple[int, int, int] = (1, 1, 32)
    fp16: bool = False
    workspace_mib: int | None = None
    timing_cache: str | None = None
    hardware_compatibility: str | None = None  # "ampere+" (TensorRT 10+)
    version_compatible: bool = False
    extra: dict = field(default_factory=dict)


def read_onnx_input(path: str) -> tuple[str, list[int], dict]:
    from vim_deploy.runtimes.graphs import load_onnx

    model = load_onnx(path, load_external_data=False)
    inp = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    meta = {p.key: p.value for p in model.metadata_props}
    meta["_scan_nodes"] = len(schema.scan_nodes(model))
    meta["_ort_only_nodes"] = sorted({n.op_type for n in schema.ort_only_nodes(model)})
    return inp.name, dims, meta


def refuse_ort_only_nodes(onnx_path: str, meta: dict) -> None:
    """TensorRT cannot serve the ONNX Runtime-only nodes (conv / add-norm ops): say so for build and its recipes."""
    if meta["_ort_only_nodes"]:
        raise VimDeployError(f"'{onnx_path}' has {' / '.join(meta['_ort_only_nodes'])} nodes (export --conv-impl op / "
                             "--norm-impl op), which only vim-deploy's ONNX Runtime library serves.",
                             "Re-export for TensorRT as --form plain or --form fused (--conv-impl conv --norm-impl "
                             "ops); TensorRT fuses those standard ops itself.")


def shape_str(dims) -> str:
    return "x".join(str(d) for d in dims)


def equivalent_commands(cfg: BuildConfig, input_name: str, dims: list[int], strongly_typed: bool,
                        plugin: str | None) -> dict[str, str]:
    return recipes.commands(cfg.onnx, cfg.output, recipes.Profile.over_batch(input_name, dims, cfg.batch), plugin,
                            strongly_typed=strongly_typed, fp16=cfg.fp16, workspace_mib=cfg.workspace_mib,
                            timing_cache=cfg.timing_cache)


def _progress_monitor(trt, bar):
    """A TensorRT IProgressMonitor (TensorRT >= 10, TensorRT-RTX) that draws a bar per top-level build
    phase (the builder's phases with a known number of steps: tactic timing, layer fusion, ...); None
    when the backend has no progress monitor or no bar was asked for."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None or bar is None:
        return None

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)
            self._ticks = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None and num_steps > 1:
                self._ticks[phase_name] = bar(f"TensorRT: {phase_name}", num_steps)

        def step_complete(self, phase_name, step):
            tick = self._ticks.get(phase_name)
            if tick:
                tick()
            return True  # never cancel

        def phase_finish(self, phase_name):
            self._ticks.pop(phase_name, None)

    return _Monitor()


def build_engine(cfg: BuildConfig, progress=None) -> dict:
    """Build and write the plan (atomically); return the build report."""
    say = progress or (lambda msg: None)
    lo, opt, hi = cfg.batch
    if not (1 <= lo <= opt <= hi):
        raise VimDeployError(f"--batch {lo}:{opt}:{hi} must satisfy 1 <= min <= opt <= max.")
    check_writable(cfg.output)
    input_name, dims, meta = read_onnx_input(cfg.onnx)
    refuse_ort_only_nodes(cfg.onnx, meta)
    trt = import_backend()  # a missing TensorRT is said first: without it nothing else matters
    plugin = None
    if meta["_scan_nodes"]:
        from vim_deploy.native.paths import find_plugin_library

        plugin = str(find_plugin_library(cfg.plugin))
    t0 = time.perf_counter()
    say(f"{trt.__name__} {trt.__version__}: loading plugins and parsing {cfg.onnx}")
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    if plugin:
        registry = builder.get_plugin_registry()
        handle = registry.load_library(plugin)
        names = {c.name for c in registry.all_creators}
        if handle is None or not {schema.OP_NAME, schema.BI_OP_NAME} <= names:
            raise VimDeployError(f"'{plugin}' did not register the {schema.OP_NAME}/{schema.BI_OP_NAME} plugins in {trt.__name__}.",
                                 "Rebuild it against this TensorRT's headers: vim-deploy plugin build --tensorrt-root ...")
    flags = 0
    typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    always_typed = trt.__name__ == "tensorrt_rtx" or int(trt.__version__.split(".")[0]) >= 11
    strongly_typed = always_typed or (typed_flag is not None and not cfg.fp16)
    if cfg.fp16 and always_typed:
        if meta.get("precision") != "fp16":
            raise VimDeployError(
                f"{trt.__name__} {trt.__version__} builds strongly typed networks: precision comes from the ONNX.",
                "Export with `vim-deploy export --precision fp16` and build that file (without --fp16).")
    if strongly_typed and typed_flag is not None and not always_typed:
        flags |= 1 << int(typed_flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(cfg.onnx):
        errs = "; ".join(parser.get_error(i).desc() for i in range(min(parser.num_errors, 3)))
        raise VimDeployError(f"TensorRT's ONNX parser rejected '{cfg.onnx}': {errs}",
                             "Was the plugin library built for this TensorRT? Is the file from `vim-deploy export`?")
    plugin_types = {getattr(trt.LayerType, n) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, n)}
    n_plugin = sum(network.get_layer(i).type in plugin_types for i in range(network.num_layers))
    config = builder.create_builder_config()
    if cfg.fp16 and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if cfg.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mib << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, [lo] + dims[1:], [opt] + dims[1:], [hi] + dims[1:])
    config.add_optimization_profile(profile)
    if cfg.hardware_compatibility:
        level = getattr(getattr(trt, "HardwareCompatibilityLevel", None), "AMPERE_PLUS", None)
        if level is None:
            raise VimDeployError(f"{trt.__name__} has no hardware-compatibility levels.")
        config.hardware_compatibility_level = level
    if cfg.version_compatible:
        flag = getattr(trt.BuilderFlag, "VERSION_COMPATIBLE", None)
        if flag is None:
            raise VimDeployError(f"{trt.__name__} cannot build version-compatible engines.")
        config.set_flag(flag)
        if plugin:
            config.plugins_to_serialize = [plugin]
    cache = None
    if cfg.timing_cache and hasattr(config, "create_timing_cache"):
        blob = Path(cfg.timing_cache).read_bytes() if Path(cfg.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    say(f"building ({network.num_layers} layers, {n_plugin} plugin layers, batch {lo}:{opt}:{hi})")
    monitor = _progress_monitor(trt, getattr(progress, "bar", None))
    if monitor is not None:
        config.progress_monitor = monitor
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise VimDeployError("TensorRT failed to build the engine (see the messages above).")
    data = bytes(plan)
    atomic_write_bytes(cfg.output, data)
    if cache is not None:
        atomic_write_bytes(cfg.timing_cache, bytes(config.get_timing_cache().serialize()))
    report = {
        "backend": trt.__name__, "backend_version": trt.__version__, "onnx": cfg.onnx, "plan": cfg.output,
        "plan_bytes": len(data), "layers": network.num_layers, "plugin_layers": n_plugin, "plugin_library": plugin,
        "strongly_typed": strongly_typed, "onnx_precision": meta.get("precision"), "model": meta.get("model_name"),
        "input": input_name, "profile": {"min": [lo] + dims[1:], "opt": [opt] + dims[1:], "max": [hi] + dims[1:]},
        "seconds": round(time.perf_counter() - t0, 2),
        "onnx_metadata": {k: v for k, v in meta.items() if not k.startswith("_")},
        "equivalent_commands": equivalent_commands(cfg, input_name, dims, strongly_typed, plugin),
    }
    # the plan's sidecar (<plan>.json: model, weights, resolution, precision), read by `validate --engine`
    # and the bench backend: written with every plan, whoever calls this
    atomic_write_text(str(sidecar_path(cfg.output)), dumps_json(report))
    return report
