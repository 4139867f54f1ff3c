"""The forward the exporter traces: the reference model's math, written in a :class:`GraphForm`.

:mod:`vim_deploy.models.vim` stays the architecture (upstream's modules and math, the reference every
runtime is compared with); this module writes the same computation as the graph form asks, the way
:mod:`vim_deploy.models.fast_path` writes it on the CUDA kernels: the scans as our custom nodes (one per
direction, or one per block), the causal convs and the add + norm as standard ops or as one custom
node each, the tokens padded or not. :func:`traced_in_form` installs it on a model for the duration of a
``torch.onnx.export`` (on the instances, so parameter and node names stay those of the model's own forward).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from vim_deploy.export.forms import GraphForm
from vim_deploy.ops.selective_scan import selective_scan_bidirectional


def mixer_forward(mixer, form: GraphForm, hidden_states: torch.Tensor, valid_len: int) -> torch.Tensor:
    """``BiMambaMixer.forward`` in ``form``: (B, Lp, C) -> (B, Lp, C), tokens past ``valid_len`` padding."""
    xz = mixer.in_proj(hidden_states).transpose(1, 2)  # (B, 2E, Lp)
    scale = 0.5 if mixer.if_divide_out else 1.0
    conv_u = (None, None)
    if form.conv_impl == "op":  # both directions' conv + SiLU, one node reading xz's x half in place
        from vim_deploy.ops.causal_conv import bi_causal_conv1d_silu

        conv_u = bi_causal_conv1d_silu(xz, mixer.conv1d.weight, mixer.conv1d.bias, mixer.conv1d_b.weight,
                                       mixer.conv1d_b.bias, export_node=True, seq_len=valid_len)
        x, z = None, xz[:, mixer.d_inner:]
    else:
        # split with constant sizes (chunk(2) would trace shape arithmetic: Shape/Gather/Div/Slice per block)
        x, z = torch.split(xz, [mixer.d_inner, mixer.d_inner], dim=1)
    if form.fuse_bidirectional and torch.jit.is_tracing():  # both directions (reverse form): one node
        f = mixer._scan_args(x, z, backward=False, flip=False, u=conv_u[0])
        b = mixer._scan_args(x, z, backward=True, flip=False, u=conv_u[1])
        y = selective_scan_bidirectional((f.u, f.delta, f.A, f.B, f.C, f.D, f.delta_bias),
                                         (b.u, b.delta, b.A, b.B, b.C, b.D, b.delta_bias),
                                         z, delta_softplus=True, out_scale=scale)
    else:
        y = (mixer._branch(x, z, backward=False, u=conv_u[0]) + mixer._branch(x, z, backward=True, u=conv_u[1])) * scale
    return mixer.out_proj(y.transpose(1, 2))


def block_forward(block, form: GraphForm, hidden_states: torch.Tensor, residual: torch.Tensor | None,
                  valid_len: int):
    """``Block.forward`` in ``form``: (mixer output, fp32 residual)."""
    if residual is not None and form.norm_impl == "op" and torch.jit.is_tracing():  # one VimAddRmsNorm node
        from vim_deploy.ops.add_rms_norm import add_rms_norm

        hidden_states, residual = add_rms_norm(hidden_states, residual, block.norm.weight, block.norm.eps,
                                               export_node=True)
    else:
        residual = hidden_states.float() if residual is None else residual + hidden_states.float()
        hidden_states = block.norm(residual).to(block.mixer.in_proj.weight.dtype)
    return block.mixer(hidden_states, valid_len), residual


def model_forward(model, form: GraphForm, on_block, x: torch.Tensor) -> torch.Tensor:
    """``VisionMamba.forward`` in ``form``: (B, 3, H, W) -> logits. ``on_block()`` after each block (progress)."""
    H, W = x.shape[-2:]
    grid = model.patch_embed.grid_for(H, W)
    token_position = grid[0] * grid[1] // 2
    L = grid[0] * grid[1] + 1
    x = model.patch_embed(x.to(model.compute_dtype)).float()
    cls_token = model.cls_token.float().expand(x.shape[0], -1, -1)
    x = torch.cat((x[:, :token_position], cls_token, x[:, token_position:]), dim=1)
    hidden_states = x + model._pos_embed_for(grid).float()
    pad = form.token_padding
    if L % pad:  # pad the tokens: every GEMM then gets aligned operands
        hidden_states = F.pad(hidden_states, (0, 0, 0, pad - L % pad))
    residual = None
    for layer in model.layers:
        hidden_states, residual = layer(hidden_states, residual, valid_len=L)
        if on_block is not None:
            on_block()
    # the final add + norm is per token: only the class token's is needed
    residual = residual[:, token_position] + hidden_states[:, token_position].float()
    return model.forward_head(model.norm_f(residual))


@contextlib.contextmanager
def traced_in_form(model, form: GraphForm, on_block=None):
    """Within the block, ``model(x)`` computes :func:`model_forward` in ``form`` (validated first)."""
    form.validate()
    if form.bidirectional != model.layers[0].mixer.bidirectional:
        raise ValueError(f"the model was built with bidirectional={model.layers[0].mixer.bidirectional!r}, "
                         f"the form asks {form.bidirectional!r}")
    # instance attributes shadow the classes' forward; modules are still called (module scopes, hence node
    # names, stay those of the model's own forward)
    patched = [(model, functools.partial(model_forward, model, form, on_block))]
    for layer in model.layers:
        patched += [(layer, functools.partial(block_forward, layer, form)),
                    (layer.mixer, functools.partial(mixer_forward, layer.mixer, form))]
    for module, forward in patched:
        module.forward = forward
    try:
        yield model
    finally:
        for module, _ in patched:
            del module.forward
