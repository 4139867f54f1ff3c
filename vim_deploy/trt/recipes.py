"""The trtexec and polygraphy command lines that build an engine, written from one description (the graph,
its optimization profile, the plugin and the typing), so the two always describe the same engine: what
``vim-deploy build`` prints beside every plan, and what ``--print-only`` / ``--target`` print per JetPack."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """One optimization profile over the graph's input: its (min, opt, max) shapes."""

    input_name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def over_batch(cls, input_name: str, dims: list[int], batch: tuple[int, int, int]) -> "Profile":
        """The graph's input dims (batch first, possibly dynamic) with the batch at min / opt / max."""
        lo, opt, hi = (tuple([b] + list(dims[1:])) for b in batch)
        return cls(input_name, lo, opt, hi)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def commands(onnx: str, output: str, profile: Profile, plugin: str | None, *, strongly_typed: bool,
             fp16: bool = False, static_plugin: bool = False, workspace_mib: int | None = None,
             timing_cache: str | None = None) -> dict[str, str]:
    """``{"trtexec": ..., "polygraphy": ...}``. ``static_plugin``: TensorRT 8.x, whose plugin library registers
    itself when loaded (trtexec ``--plugins``), instead of ``--dynamicPlugins`` (TensorRT >= 10)."""
    trtexec = ["trtexec", f"--onnx={onnx}", f"--saveEngine={output}"]
    poly = ["polygraphy", "convert", onnx, "--convert-to", "trt", "-o", output]
    for key, shape in profile.shapes().items():
        trtexec.append(f"--{key}Shapes={profile.input_name}:{'x'.join(map(str, shape))}")
        poly += [f"--trt-{key}-shapes", f"{profile.input_name}:[{','.join(map(str, shape))}]"]
    if plugin:
        trtexec.append(f"--plugins={plugin}" if static_plugin else f"--dynamicPlugins={plugin}")
        poly += ["--plugins", plugin]
    if strongly_typed:
        trtexec.append("--stronglyTyped")
        poly.append("--strongly-typed")
    elif fp16:
        trtexec.append("--fp16")
        poly.append("--fp16")
    if workspace_mib:
        trtexec.append(f"--memPoolSize=workspace:{workspace_mib}M")
        poly += ["--pool-limit", f"workspace:{workspace_mib}M"]
    if timing_cache:
        trtexec.append(f"--timingCacheFile={timing_cache}")
        poly += ["--timing-cache", timing_cache]
    return {"trtexec": shlex.join(trtexec), "polygraphy": shlex.join(poly)}


def parse_profiles(line: str) -> dict[str, tuple[int, ...]]:
    """The (min, opt, max) shapes a printed trtexec or polygraphy line builds with (for checks)."""
    words = shlex.split(line)
    out = {}
    for i, w in enumerate(words):
        for key in ("min", "opt", "max"):
            if w.startswith(f"--{key}Shapes="):
                out[key] = tuple(int(v) for v in w.split(":", 1)[1].split("x"))
            elif w == f"--trt-{key}-shapes":
                out[key] = tuple(int(v) for v in words[i + 1].split(":", 1)[1].strip("[]").split(","))
    return out
