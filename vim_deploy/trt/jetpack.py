"""Per-JetPack build recipes: which TensorRT each JetPack ships, which plugin adapter that
TensorRT loads, how to export for it and the trtexec / polygraphy lines that build the engine on
the board. `vim-deploy build --print-only --target <name>` prints them without TensorRT installed.

TensorRT 8.x loads IPluginV2DynamicExt plugins (our library registers itself when trtexec
``--plugins`` / polygraphy ``--plugins`` loads it) and has no strongly typed networks (precision via
``--fp16``); TensorRT >= 10 loads the IPluginV3 library through ``--dynamicPlugins`` and builds
strongly typed networks from an fp16 export. TensorRT 11 removed weak typing altogether (trtexec has no
``--fp16`` / ``--int8`` / ``--best``; INT8 / FP8 only through explicit Q/DQ in the graph). TensorRT 8.5's
ONNX parser reads opsets <= 17.
"""

from __future__ import annotations

from dataclasses import dataclass

from vim_deploy.errors import VimDeployError
from vim_deploy.trt import recipes


@dataclass(frozen=True)
class Target:
    name: str
    jetpack: str
    tensorrt: str
    gpus: str
    adapter: str
    major: int

    @property
    def export_flags(self) -> str:
        return "--precision fp16 --opset 17"


TARGETS = {t.name: t for t in (
    Target("jetpack-5.1", "5.1.x", "8.5.2", "Xavier (sm_72), Orin (sm_87)", "IPluginV2DynamicExt", 8),
    Target("jetpack-6.0", "6.0", "8.6.2", "Orin (sm_87)", "IPluginV2DynamicExt", 8),
    Target("jetpack-6.1", "6.1 / 6.2", "10.3", "Orin (sm_87)", "IPluginV3", 10),
    Target("jetpack-7", "7.0 - 7.2.1", "10.13+", "Thor (sm_110)", "IPluginV3", 10),
    # TensorRT 11.4.1 supports JetPack 7.2.2 and later only; no TensorRT 11 release supports JetPack 6
    Target("jetpack-7.2", "7.2.2+", "11.4.1", "Thor (sm_110)", "IPluginV3", 11),
    Target("tensorrt-11", "-", "11.x", "x86-64 / SBSA servers, Turing and newer", "IPluginV3", 11),
)}


def target(name: str) -> Target:
    if name not in TARGETS:
        raise VimDeployError(f"unknown target '{name}'.", f"Targets: {', '.join(TARGETS)}.")
    return TARGETS[name]


def commands(t: Target, onnx_path: str, output: str, plugin: str, input_name: str, dims: list[int],
             batch: tuple[int, int, int]) -> dict[str, str]:
    """trtexec and polygraphy lines that build `onnx_path` for target `t` with the plugin at `plugin`: one
    profile for both (vim_deploy.trt.recipes); TensorRT 8.x: the self-registering plugin and --fp16, >= 10:
    --dynamicPlugins and a strongly typed network."""
    typed = t.major >= 10
    return recipes.commands(onnx_path, output, recipes.Profile.over_batch(input_name, dims, batch), plugin,
                            strongly_typed=typed, fp16=not typed, static_plugin=not typed)


def build_plugin_line(t: Target) -> str:
    """How to build the plugin library on the board."""
    arch = {"jetpack-5.1": "72-real;87-real", "jetpack-7": "110-real", "jetpack-7.2": "110-real"}.get(t.name, "87-real")
    if t.name == "tensorrt-11":
        return "vim-deploy plugin build --tensorrt-root <TensorRT folder>"
    return f"vim-deploy plugin build --tensorrt-root /usr --cuda-archs '{arch}'   # headers in /usr/include/aarch64-linux-gnu"
