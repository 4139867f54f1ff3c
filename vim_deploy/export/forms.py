"""Graph forms: how an exported graph writes the same Vim, declared once from the CLI to the metadata.

Every knob of the exported graph (how the scan, the backward branch, the causal conv and the add + norm
are written, and the token padding) is a :class:`Knob` here: its name (the :class:`GraphForm` field, the
metadata key and, with dashes, the ``vim-deploy export`` flag), its choices, its default, and the
runtimes that serve each choice. A :class:`GraphForm` is one set of choices; the named presets
(:data:`PRESETS`: ``plain``, ``fused``, ``ort-optimized``, ...) are what ``export --form`` and the bench
backend names (``<runtime>-<precision>[-<form>]``) use. Every form computes the same function (tested);
they differ in the nodes a runtime sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from vim_deploy.errors import VimDeployError

#: Runtimes, as the ``runtimes`` of a knob's choices name them.
TENSORRT = "tensorrt"            # TensorRT / TensorRT-RTX with libvim_trt_plugin.so
ORT_VIM_OPS = "onnxruntime+ops"  # ONNX Runtime with libvim_ort_ops.so
ORT = "onnxruntime"              # ONNX Runtime alone (standard ops only)
REFERENCE = "reference"          # onnx's ReferenceEvaluator with vim-deploy's NumPy ops
ALL_RUNTIMES = (TENSORRT, ORT_VIM_OPS, ORT, REFERENCE)
_WITH_OPS = (TENSORRT, ORT_VIM_OPS, REFERENCE)


@dataclass(frozen=True)
class Knob:
    name: str
    choices: tuple
    default: object
    help: str
    runtimes: dict  # choice -> runtimes that serve it (a choice not listed: every runtime)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def served_by(self, value) -> tuple:
        return self.runtimes.get(value, ALL_RUNTIMES)


KNOBS = (
    Knob("scan_impl", ("plugin", "function", "portable"), "plugin",
         "plugin: one vim_deploy::VimSelectiveScan node per scan (TensorRT's plugin, ONNX Runtime's op library); "
         "function: the same nodes plus an ONNX local function of that name (runtimes without the library run "
         "the function); portable: standard ONNX ops only (an ONNX Scan over the tokens).",
         {"plugin": _WITH_OPS, "function": ALL_RUNTIMES, "portable": (ORT, REFERENCE)}),
    Knob("bidirectional", ("reverse", "flip"), "reverse",
         "reverse: the backward branch as an anti-causal conv and a reverse=1 scan (no flips in the graph); "
         "flip: upstream's flip -> causal -> flip, literally. Same numbers.", {}),
    Knob("fuse_bidirectional", (False, True), False,
         "One VimBiSelectiveScan node per block (both directions, one launch) instead of two scan nodes.", {}),
    Knob("conv_impl", ("conv", "op"), "conv",
         "conv: grouped Conv nodes (every runtime); op: both directions' causal conv1d + SiLU as one "
         "vim_deploy::VimBiCausalConv1dSilu node (ONNX Runtime with vim-deploy's op library only).",
         {"op": (ORT_VIM_OPS, REFERENCE)}),
    Knob("norm_impl", ("ops", "op"), "ops",
         "ops: the residual add + RMSNorm as standard nodes; op: one vim_deploy::VimAddRmsNorm node per block "
         "(ONNX Runtime with vim-deploy's op library only).",
         {"op": (ORT_VIM_OPS, REFERENCE)}),
    Knob("token_padding", (1, 8), 1,
         "Pad the tokens with zeros to a multiple of this after the position embedding (8: every GEMM reads "
         "16-byte aligned rows); needs conv_impl op, which reads the padding as zeros.",
         {8: (ORT_VIM_OPS, REFERENCE)}),
)
KNOB = {k.name: k for k in KNOBS}


@dataclass(frozen=True)
class GraphForm:
    """One choice per :data:`KNOBS` entry (defaults: the plain plugin graph, which every runtime with our
    plugin or op library serves)."""

    scan_impl: str = "plugin"
    bidirectional: str = "reverse"
    fuse_bidirectional: bool = False
    conv_impl: str = "conv"
    norm_impl: str = "ops"
    token_padding: int = 1

    def validate(self) -> "GraphForm":
        """Reject unknown choices and combinations that cannot be written (one line each)."""
        for knob in KNOBS:
            value = getattr(self, knob.name)
            if value not in knob.choices:
                shown = ", ".join(str(c) for c in knob.choices)
                raise VimDeployError(f"{knob.flag} {value!r} is not a graph form choice.", f"Use one of {shown}.")
        if self.fuse_bidirectional and self.bidirectional != "reverse":
            raise VimDeployError("--fuse-bidirectional needs the reverse form of the backward branch.",
                                 "Drop --bidirectional flip.")
        if self.conv_impl == "op" and (self.scan_impl != "plugin" or self.bidirectional != "reverse"):
            raise VimDeployError("--conv-impl op needs the plugin graph with the reverse form of the backward branch.",
                                 "Drop --scan-impl / --bidirectional flip, or use --conv-impl conv.")
        if self.norm_impl == "op" and self.scan_impl != "plugin":
            raise VimDeployError("--norm-impl op needs the plugin graph.", "Drop --scan-impl, or use --norm-impl ops.")
        if self.token_padding > 1 and self.conv_impl != "op":
            raise VimDeployError("--pad-tokens needs --conv-impl op (a plain conv would read the padding tokens).",
                                 "Add --conv-impl op (or use --form ort-optimized), or drop --pad-tokens.")
        return self

    def runtimes(self) -> tuple:
        """The runtimes that serve every choice of this form."""
        served = set(ALL_RUNTIMES)
        for knob in KNOBS:
            served &= set(knob.served_by(getattr(self, knob.name)))
        return tuple(r for r in ALL_RUNTIMES if r in served)

    def metadata(self) -> dict[str, str]:
        """The graph metadata entries of this form (read back by :meth:`from_metadata`)."""
        return {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: dict) -> "GraphForm":
        """The form a graph was exported in; entries missing from older graphs take their defaults."""
        kwargs = {}
        for f in fields(cls):
            if f.name not in meta:
                continue
            default = KNOB[f.name].default
            raw = meta[f.name]
            kwargs[f.name] = raw in ("1", "True") if isinstance(default, bool) else type(default)(raw)
        return cls(**kwargs)

    @property
    def name(self) -> str:
        """The preset this form is, or its non-default choices ("conv_impl=op,norm_impl=op")."""
        for preset, form in PRESETS.items():
            if form == self:
                return preset
        return ",".join(f"{k}={v}" for k, v in asdict(self).items() if v != KNOB[k].default)

    def with_(self, **changes) -> "GraphForm":
        return replace(self, **changes)


#: Named forms: what export --form, the bench backend names and the docs use.
PRESETS: dict[str, GraphForm] = {
    "plain": GraphForm(),
    "fused": GraphForm(fuse_bidirectional=True),
    "function": GraphForm(scan_impl="function"),
    "portable": GraphForm(scan_impl="portable"),
    # the fastest graph on ONNX Runtime with vim-deploy's op library (not for TensorRT)
    "ort-optimized": GraphForm(fuse_bidirectional=True, conv_impl="op", norm_impl="op", token_padding=8),
}


def preset(name: str) -> GraphForm:
    try:
        return PRESETS[name]
    except KeyError:
        raise VimDeployError(f"unknown graph form '{name}'.", f"Use one of {', '.join(PRESETS)}.") from None
