""" Vision Mamba (Vim), a state_dict-compatible re-implementation.

Paper: `Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model`
    - https://arxiv.org/abs/2401.09417
Upstream: https://github.com/hustvl/Vim (``vim/models_mamba.py`` and its bundled
``mamba-1p1p1/mamba_ssm/modules/mamba_simple.py``).

What this file computes is what the upstream *fast path* computes (``use_fast_path=True``, the path
every released checkpoint was trained and evaluated with): per block, fused Add -> RMSNorm with an
fp32 residual, then the "bimamba v2" mixer: one shared ``in_proj``, a forward branch and a backward
branch (own conv1d / x_proj / dt_proj / A_log / D, run over the flipped sequence), their outputs
averaged (``if_divide_out``) before the shared ``out_proj``. Upstream's slow path silently drops the
backward branch; it is not reproduced.

Differences from upstream, none of which change the numbers for the released checkpoints:
  * pure PyTorch (no mamba_ssm / causal_conv1d / Triton): runs on CPU and GPU;
  * any input size divisible by the patch stride, by resampling ``pos_embed`` (upstream asserts 224);
  * the backward branch can run as an anti-causal conv plus a reverse scan instead of flip -> causal
    -> flip (``bidirectional="reverse"``, identical math, no flips in the exported graph);
  * a precision policy for fp16/bf16 deployment (matmuls and convs in half precision, residual
    stream, norms and the scan state in fp32), see :meth:`VisionMamba.set_precision`.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from vim_deploy.errors import VimDeployError
from vim_deploy.models import fast_path
from vim_deploy.models.registry import register_alias, register_cfg, register_model
from vim_deploy.ops.scan_direction import ScanDirection
from vim_deploy.ops.selective_scan import selective_scan

__all__ = ["VisionMamba", "BiMambaMixer", "Block", "RMSNorm", "PatchEmbed", "create_vim"]

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)

Precision = Literal["fp32", "fp16", "bf16"]
_PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class PatchEmbed(nn.Module):
    """Conv patchify; the grid follows the input size (``(H - patch) // stride + 1``)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, stride: int = 16, in_chans: int = 3,
                 embed_dim: int = 192):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.stride = stride
        self.grid_size = self.grid_for(img_size, img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def grid_for(self, h: int, w: int) -> tuple[int, int]:
        return ((h - self.patch_size[0]) // self.stride + 1, (w - self.patch_size[1]) // self.stride + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)  # B C H W -> B (H W) C; the batch as -1, so that a graph takes a batch of 0 too
        return y.reshape(-1, y.shape[1], y.shape[2] * y.shape[3]).transpose(1, 2)


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 whatever the input dtype (as mamba_ssm's Triton kernel does)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        rstd = torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps)
        return x * rstd * self.weight.float()


class BiMambaMixer(nn.Module):
    """Upstream ``Mamba(bimamba_type="v2", if_divide_out=True)``, inference only.

    Parameter names and shapes equal upstream's, so its state_dict loads unchanged.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, if_divide_out: bool = True,
                 bidirectional: Literal["flip", "reverse"] = "flip"):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.if_divide_out = if_divide_out
        self.bidirectional = bidirectional
        self.use_kernel = False  # opt-in CUDA fast path (vim_deploy.ops.kernels)

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=False)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        for suffix in ("", "_b"):
            conv = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                             padding=d_conv - 1, bias=True)
            x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
            # Upstream initialisation, so that seeded weights give realistic activations.
            dt_init_std = self.dt_rank ** -0.5
            nn.init.uniform_(dt_proj.weight, -dt_init_std, dt_init_std)
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            dt = dt.clamp(min=dt_init_floor)
            with torch.no_grad():
                dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
            setattr(self, f"conv1d{suffix}", conv)
            setattr(self, f"x_proj{suffix}", x_proj)
            setattr(self, f"dt_proj{suffix}", dt_proj)
            setattr(self, f"A{suffix}_log", nn.Parameter(torch.log(A)))
            setattr(self, f"D{suffix}", nn.Parameter(torch.ones(self.d_inner)))

    def _scan_args(self, x: torch.Tensor, z: torch.Tensor, backward: bool, flip: bool, u: torch.Tensor | None = None):
        """Inputs of one direction's scan as a :class:`ScanDirection`, (B, E, L) layout.
        ``u``: this direction's conv + SiLU output when already computed (the exporter's conv node of both
        directions, vim_deploy.export.graph_forward)."""
        sfx = "_b" if backward else ""
        conv: nn.Conv1d = getattr(self, f"conv1d{sfx}")
        x_proj: nn.Linear = getattr(self, f"x_proj{sfx}")
        dt_proj: nn.Linear = getattr(self, f"dt_proj{sfx}")
        A = -torch.exp(getattr(self, f"A{sfx}_log").float())
        D = getattr(self, f"D{sfx}").float()
        k = self.d_conv - 1
        reverse = backward and not flip
        if u is not None:
            x = u
        else:
            # causal conv over the flipped sequence == anti-causal conv with a flipped kernel
            weight = conv.weight.flip(-1) if reverse else conv.weight
            padded = F.pad(x, (0, k) if reverse else (k, 0))
            x = F.silu(F.conv1d(padded, weight, conv.bias, groups=self.d_inner))
        x_dbl = x_proj(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)  # bias goes to the scan in fp32
        return ScanDirection(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), D, z, dt_proj.bias.float(), reverse)

    def _branch(self, x: torch.Tensor, z: torch.Tensor, backward: bool, u: torch.Tensor | None = None) -> torch.Tensor:
        """One scan direction on (B, E, L) inputs, returning (B, E, L) in original token order."""
        flip = backward and self.bidirectional == "flip"
        if flip:
            x = None if x is None else x.flip(-1)
            z = z.flip(-1)
            u = None if u is None else u.flip(-1)
        d = self._scan_args(x, z, backward, flip, u)
        # (the CUDA fast path never gets here: forward() sends the whole block to the fast path)
        y = selective_scan(d.u, d.delta, d.A, d.B, d.C, d.D, d.z, d.delta_bias, delta_softplus=True, reverse=d.reverse)
        return y.flip(-1) if flip else y

    def kernel_path(self, x: torch.Tensor) -> bool:
        """Whether a forward on x runs on the CUDA kernels (opted in, a CUDA tensor, not being traced)."""
        return self.use_kernel and x.is_cuda and not torch.jit.is_tracing()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C)."""
        if self.kernel_path(hidden_states):
            return fast_path.mixer_forward(self, hidden_states)
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2E, L)
        # split with constant sizes (chunk(2) would trace shape arithmetic: Shape/Gather/Div/Slice per block)
        x, z = torch.split(xz, [self.d_inner, self.d_inner], dim=1)
        y = (self._branch(x, z, backward=False) + self._branch(x, z, backward=True)) * (0.5 if self.if_divide_out else 1.0)
        return self.out_proj(y.transpose(1, 2))


class Block(nn.Module):
    """Add -> RMSNorm -> mixer, returning (mixer output, fp32 residual) like upstream's fused path."""

    def __init__(self, dim: int, d_state: int = 16, norm_eps: float = 1e-5, **mixer_kwargs):
        super().__init__()
        self.mixer = BiMambaMixer(dim, d_state=d_state, **mixer_kwargs)
        self.norm = RMSNorm(dim, eps=norm_eps)

    def forward(self, hidden_states: torch.Tensor, residual: Optional[torch.Tensor], valid_len: int | None = None):
        """valid_len: tokens past it are padding (the fast path's); the PyTorch path gets none."""
        dtype = self.mixer.in_proj.weight.dtype
        if self.mixer.kernel_path(hidden_states):
            return fast_path.block_forward(self, hidden_states, residual, valid_len)
        residual = hidden_states.float() if residual is None else residual + hidden_states.float()
        hidden_states = self.norm(residual).to(dtype)
        return self.mixer(hidden_states), residual


class VisionMamba(nn.Module):
    """Vision Mamba (https://arxiv.org/abs/2401.09417), middle class token, bimamba v2."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        stride: int = 16,
        depth: int = 24,
        embed_dim: int = 192,
        d_state: int = 16,
        channels: int = 3,
        num_classes: int = 1000,
        norm_epsilon: float = 1e-5,
        if_divide_out: bool = True,
        bidirectional: Literal["flip", "reverse"] = "flip",
        **kwargs,
    ):
        super().__init__()
        unknown = set(kwargs) - {"if_devide_out"}  # upstream's vim_base passes this misspelling
        if unknown:
            raise TypeError(f"unexpected VisionMamba arguments: {sorted(unknown)}")
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.d_state = d_state
        self.patch_embed = PatchEmbed(img_size, patch_size, stride, channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.layers = nn.ModuleList([
            Block(embed_dim, d_state=d_state, norm_eps=norm_epsilon, if_divide_out=if_divide_out,
                  bidirectional=bidirectional)
            for _ in range(depth)
        ])
        self.norm_f = RMSNorm(embed_dim, eps=norm_epsilon)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(depth)

    # -- initialisation (upstream's, so seeded weights behave like a real model) ------------------
    def _init_weights(self, depth: int) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        w = self.patch_embed.proj.weight
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        nn.init.trunc_normal_(w, std=math.sqrt(1.0 / fan_in) / 0.87962566103423978)  # lecun_normal_
        nn.init.zeros_(self.patch_embed.proj.bias)
        for layer in self.layers:
            p = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(p, a=math.sqrt(5))
            with torch.no_grad():
                p /= math.sqrt(depth)

    # -- precision ---------------------------------------------------------------------------
    @property
    def compute_dtype(self) -> torch.dtype:
        return self.patch_embed.proj.weight.dtype

    def set_precision(self, precision: Precision) -> "VisionMamba":
        """Cast matmul/conv weights to ``precision``; keep norms, A, D, dt bias, tokens in fp32.

        This is the deployment precision policy: half-precision activations between matmuls,
        an fp32 residual stream, fp32 RMSNorm and an fp32 scan state (as upstream's kernels run
        under autocast). The exported fp16 ONNX carries exactly this policy.
        """
        dtype = _PRECISION_DTYPES[precision]
        self.float()
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                module.weight.data = module.weight.data.to(dtype)
                if module.bias is not None and not _is_dt_proj(self, module):
                    module.bias.data = module.bias.data.to(dtype)
        return self

    def set_fast_path(self, enabled: bool = True) -> "VisionMamba":
        """Route the scans through the CUDA kernel library (``vim_deploy.ops.kernels``)."""
        for layer in self.layers:
            layer.mixer.use_kernel = enabled
        return self

    def _check_inference_only(self, x: torch.Tensor) -> None:
        """The CUDA kernels have no backward: refuse to build a graph that would silently lose gradients."""
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            raise VimDeployError("the CUDA fast path is inference-only (its kernels have no backward).",
                                 "Run it under torch.no_grad() / torch.inference_mode(), or call set_fast_path(False) "
                                 "to train.")

    # -- forward -----------------------------------------------------------------------------
    def _pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        if tuple(grid) == tuple(self.patch_embed.grid_size):
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, self.patch_embed.grid_size, grid)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) features of the middle class token (fp32)."""
        H, W = x.shape[-2:]
        ps, st = self.patch_embed.patch_size[0], self.patch_embed.stride
        if not torch.jit.is_tracing() and ((H - ps) % st or (W - ps) % st or H < ps or W < ps):
            raise ValueError(f"input {H}x{W} is not a valid size for patch {ps} / stride {st}")
        grid = self.patch_embed.grid_for(H, W)
        fast = all(layer.mixer.kernel_path(x) for layer in self.layers)
        token_position = grid[0] * grid[1] // 2
        L = grid[0] * grid[1] + 1
        residual = None
        if fast:  # the same tokens in the compute dtype, padded to a multiple of 8, in one buffer
            self._check_inference_only(x)
            hidden_states = fast_path.embed_tokens(self, x, self._pos_embed_for(grid))
        else:
            x = self.patch_embed(x.to(self.compute_dtype)).float()
            B = x.shape[0]
            cls_token = self.cls_token.float().expand(B, -1, -1)
            x = torch.cat((x[:, :token_position], cls_token, x[:, token_position:]), dim=1)
            hidden_states = x + self._pos_embed_for(grid).float()
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, residual, valid_len=L)
        # the final add + norm is per token: only the class token's is needed
        residual = residual[:, token_position] + hidden_states[:, token_position].float()
        return self.norm_f(residual)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x
        dtype = self.head.weight.dtype if isinstance(self.head, nn.Linear) else x.dtype
        return self.head(x.to(dtype)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _is_dt_proj(model: VisionMamba, module: nn.Module) -> bool:
    return any(module is layer.mixer.dt_proj or module is layer.mixer.dt_proj_b for layer in model.layers)


def resample_pos_embed(pos_embed: torch.Tensor, old_grid, new_grid) -> torch.Tensor:
    """Bicubic resampling of the patch part of ``pos_embed``, as upstream's fine-tuning does.

    Upstream (``vim/main.py``) treats index 0 as the extra token and the rest as the grid, even
    though the class token sits in the middle of the sequence; its stride-8 fine-tuned checkpoints
    were made that way, so the same convention is kept.
    """
    extra, grid_tokens = pos_embed[:, :1], pos_embed[:, 1:]
    C = pos_embed.shape[-1]
    grid_tokens = grid_tokens.reshape(1, old_grid[0], old_grid[1], C).permute(0, 3, 1, 2)
    grid_tokens = F.interpolate(grid_tokens.float(), size=tuple(int(g) for g in new_grid), mode="bicubic",
                                align_corners=False)
    grid_tokens = grid_tokens.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat((extra, grid_tokens), dim=1)


# -- configs and entrypoints --------------------------------------------------------------------

def _cfg(checkpoint: str = "", hf_hub_id: str = "", **kwargs) -> dict:
    return {
        "hf_hub_id": hf_hub_id,
        "checkpoint": checkpoint,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        **kwargs,
    }


def create_vim(variant: str, **kwargs) -> VisionMamba:
    """Build ``variant`` with its registered arguments overridden by ``kwargs``."""
    return VisionMamba(**kwargs)


_OFFICIAL = {
    # official name: (alias, architecture args, cfg)
    "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_tiny", dict(patch_size=16, stride=16, embed_dim=192),
        _cfg("vim_t_midclstok_76p1acc.pth", "hustvl/Vim-tiny-midclstok", top1=76.1)),
    "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_tiny_stride8", dict(patch_size=16, stride=8, embed_dim=192),
        _cfg("vim_t_midclstok_ft_78p3acc.pth", "hustvl/Vim-tiny-midclstok", top1=78.3)),
    "vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_small", dict(patch_size=16, stride=16, embed_dim=384),
        _cfg("vim_s_midclstok_80p5acc.pth", "hustvl/Vim-small-midclstok", top1=80.5)),
    "vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_small_stride8", dict(patch_size=16, stride=8, embed_dim=384),
        _cfg("vim_s_midclstok_ft_81p6acc.pth", "hustvl/Vim-small-midclstok", top1=81.6)),
    "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2": (
        "vim_base", dict(patch_size=16, stride=16, embed_dim=768),
        _cfg("vim_b_midclstok_81p9acc.pth", "hustvl/Vim-base-midclstok", top1=81.9)),
}

ARCH_ARGS: dict[str, dict] = {}


def _make_entrypoint(name: str, arch: dict):
    def entrypoint(**kwargs) -> VisionMamba:
        return create_vim(name, **dict(dict(depth=24, d_state=16), **arch, **kwargs))

    entrypoint.__name__ = name
    entrypoint.__doc__ = f"{name} (hustvl/Vim official configuration)."
    return entrypoint


for _name, (_alias, _arch, _c) in _OFFICIAL.items():
    register_model(_make_entrypoint(_name, _arch))
    register_alias(_alias, _name)
    register_cfg(_name, _c)
    ARCH_ARGS[_name] = dict(depth=24, d_state=16, **_arch)


@register_model
def test_vim(**kwargs) -> VisionMamba:
    """Tiny Vim (depth 2, width 64, 10 classes, 64x64 input) for fast CI tests."""
    args = dict(img_size=64, patch_size=16, stride=16, depth=2, embed_dim=64, num_classes=10)
    return create_vim("test_vim", **dict(args, **kwargs))


register_cfg("test_vim", _cfg(input_size=(3, 64, 64), num_classes=10))
ARCH_ARGS["test_vim"] = dict(img_size=64, patch_size=16, stride=16, depth=2, embed_dim=64, num_classes=10,
                             d_state=16)
