"""The CUDA fast path of a Vim block: the same math as :mod:`vim_deploy.models.vim`, on our kernels.

The reference model (``vim.py``) stays readable as the official architecture; when a model is switched
to the fast path (``VisionMamba.set_fast_path(True)``, CUDA tensors, not tracing) each block calls
:func:`block_forward` here instead. Per block: one fused residual add + RMSNorm, the in_proj GEMM, one
conv1d + SiLU launch for both directions, the x_proj / dt_proj GEMMs, one scan launch for both
directions, out_proj. Nothing is transposed or copied between kernels (the kernels read slices in place).

Between in_proj and out_proj activations are channel-major, (channels, batch * tokens): every
projection is then one matrix product over all images (batched over the images, (channels, tokens)
per image, they were 10-25% slower on the H200), and the conv and scan
kernels read a (batch, channels, tokens) view whose batches lie inside a row stride. Both directions'
x_proj and dt_proj are one block-diagonal product each over [u_f; u_b] (twice the FLOPs of these small
products, half the launches; H200: vim_small batch 128 2.3% and vim_tiny batch 8 @ 1248 2.9% faster a
forward, vim_base batch 128 within 0.4%).
"""

from __future__ import annotations

import torch

from vim_deploy.ops.scan_direction import ScanDirection


def kernel_params(mixer) -> dict:
    """The fp32 forms the kernels take (conv weights and biases, A = -exp(A_log), D, dt bias), made
    once per version of the weights and cached on the mixer, so a forward launches no conversions."""
    src = {"conv_w": mixer.conv1d.weight, "conv_b": mixer.conv1d.bias, "conv_w_b": mixer.conv1d_b.weight,
           "conv_b_b": mixer.conv1d_b.bias, "A": mixer.A_log, "A_b": mixer.A_b_log, "D": mixer.D, "D_b": mixer.D_b,
           "dt_bias": mixer.dt_proj.bias, "dt_bias_b": mixer.dt_proj_b.bias}
    key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in src.values())
    cache = getattr(mixer, "_kernel_cache", None)
    if cache is None or cache[0] != key:
        with torch.no_grad():
            out = {k: t.detach().float().contiguous() for k, t in src.items()}
            for k in ("conv_w", "conv_w_b"):
                out[k] = out[k].reshape(mixer.d_inner, -1).contiguous()
            for k in ("A", "A_b"):
                out[k] = -torch.exp(out[k])
        cache = (key, out)
        mixer._kernel_cache = cache
    return cache[1]


def fused_projections(mixer) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions' x_proj and dt_proj as block-diagonal weights (the ``fused`` layout), cached on the
    mixer per version of the weights: x_proj (4N + 2R, 2E) maps [u_f; u_b] to rows B_f, C_f, dt_f, dt_b,
    B_b, C_b (the two dt blocks adjacent), dt_proj (2E, 2R) maps [dt_f; dt_b] to [delta_f; delta_b]."""
    src = (mixer.x_proj.weight, mixer.x_proj_b.weight, mixer.dt_proj.weight, mixer.dt_proj_b.weight)
    key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in src)
    cache = getattr(mixer, "_fused_cache", None)
    if cache is None or cache[0] != key:
        E, R, N = mixer.d_inner, mixer.dt_rank, mixer.d_state
        xf, xb, dtf, dtb = (t.detach() for t in src)
        with torch.no_grad():
            wx = xf.new_zeros((4 * N + 2 * R, 2 * E))
            wx[:2 * N, :E] = xf[R:]
            wx[2 * N:2 * N + R, :E] = xf[:R]
            wx[2 * N + R:2 * N + 2 * R, E:] = xb[:R]
            wx[2 * N + 2 * R:, E:] = xb[R:]
            wdt = dtf.new_zeros((2 * E, 2 * R))
            wdt[:E, :R] = dtf
            wdt[E:, R:] = dtb
        cache = (key, (wx, wdt))
        mixer._fused_cache = cache
    return cache[1]


def stacked(u_f: torch.Tensor, u_b: torch.Tensor) -> bool:
    """Whether u_b's rows follow u_f's inside one buffer, so that [u_f; u_b] is one GEMM operand.

    Adjacent addresses alone do not say so: two separate allocations can lie back to back (the caching
    allocator did that for batch 1's two conv outputs, before the conv wrote both into one buffer), and a
    view spanning both would run past the first one's storage."""
    rows = u_f.shape[1]  # (B, E, L) views: rows stride(1) apart
    return (u_f.untyped_storage().data_ptr() == u_b.untyped_storage().data_ptr()
            and u_b.storage_offset() == u_f.storage_offset() + rows * u_f.stride(1)
            and u_f.stride() == u_b.stride())


def mixer_forward(mixer, hidden_states: torch.Tensor, valid_len: int | None = None) -> torch.Tensor:
    """``BiMambaMixer.forward`` on the kernels, (B, Lp, C) -> (B, Lp, C).

    hidden_states may carry padding tokens after the first ``valid_len`` (VisionMamba pads to a
    multiple of 8 so that every GEMM operand is aligned); conv and scan never read them, and the
    outputs there (of this mixer, hence of the block and the residual) are don't-cares, possibly
    non-finite, that no valid token reads."""
    from vim_deploy.ops import kernels

    E, R, N = mixer.d_inner, mixer.dt_rank, mixer.d_state
    Bsz, Lp, C = hidden_states.shape
    L = Lp if valid_len is None else valid_len
    T = Bsz * Lp
    kp = kernel_params(mixer)

    def rows(t: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """The kernels' (B, b - a, L) view of rows a..b-1 of a (rows, B * Lp) tensor (batches Lp apart)."""
        return t[a:b].view(b - a, Bsz, Lp).permute(1, 0, 2)[..., :L]

    xz = mixer.in_proj.weight @ hidden_states.reshape(T, C).t()  # (2E, B * Lp)
    x, z = rows(xz, 0, E), rows(xz, E, 2 * E)
    u_f, u_b = kernels.causal_conv1d_silu(x, kp["conv_w"], kp["conv_b"], kp["conv_w_b"], kp["conv_b_b"])
    # per direction: its x_proj output (B rows at b0, C rows after them) and its delta (rows d0..d0 + E - 1)
    if stacked(u_f, u_b):
        # the conv wrote u_b right after u_f: [u_f; u_b] is one (2E, B * Lp) operand
        wx, wdt = fused_projections(mixer)
        xd = wx @ u_f.as_strided((2 * E, T), (u_f.stride(1), 1))  # B_f, C_f, dt_f, dt_b, B_b, C_b
        delta = wdt @ xd[2 * N:2 * N + 2 * R]  # delta_f, delta_b
        proj = [(xd, 0, delta, 0), (xd, 2 * N + 2 * R, delta, E)]
    else:
        proj = []
        for u, sfx in ((u_f, ""), (u_b, "_b")):
            # every token of u (zeros past L in every image): (E, B * Lp)
            xd = getattr(mixer, f"x_proj{sfx}").weight @ u.as_strided((E, T), (u.stride(1), 1))  # dt, B, C rows
            proj.append((xd, R, getattr(mixer, f"dt_proj{sfx}").weight @ xd[:R], 0))
    dirs = [ScanDirection(u, rows(delta, d0, d0 + E), kp[f"A{sfx}"], rows(xd, b0, b0 + N), rows(xd, b0 + N, b0 + 2 * N),
                          kp[f"D{sfx}"], z, kp[f"dt_bias{sfx}"], reverse)
            for (u, sfx, reverse), (xd, b0, delta, d0) in zip(((u_f, "", False), (u_b, "_b", True)), proj)]
    # y's padding tokens stay unwritten: out_proj maps each token on its own, so whatever they hold only
    # reaches padding rows of the output and the residual, which no valid token reads (conv and scan
    # stop at L, x_proj reads u's zeros there) and the model drops (zeroing them cost ~1% of a vim_small
    # batch-128 forward: one strided fill a layer).
    y = torch.empty((E, T), dtype=u_f.dtype, device=u_f.device)
    kernels.selective_scan_multi(dirs, True, 0.5 if mixer.if_divide_out else 1.0, out=rows(y, 0, E))
    return (y.t() @ mixer.out_proj.weight.t()).view(Bsz, Lp, C)


def patch_embed_forward(patch_embed, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``PatchEmbed.forward`` as one GEMM when patches do not overlap (stride = patch size, Vim's
    configurations): (B, 3, H, W) -> (B, patches, C), computed in ``dtype`` (x's by default). cuDNN ran the
    3-channel NCHW convolution as an implicit GEMM plus NCHW -> NHWC copies, about 1 ms of a vim_small
    batch-128 forward and 5% of a vim_tiny batch-8 forward at 1248 px (2026-12-01, H200,
    bench/profile_model.py); the patch gather here is one copy of the image, which also casts it."""
    ps, st = patch_embed.patch_size[0], patch_embed.stride
    proj = patch_embed.proj
    dtype = x.dtype if dtype is None else dtype
    if st != ps or patch_embed.patch_size[1] != ps:
        return patch_embed(x.to(dtype))
    B, C, H, W = x.shape
    gh, gw = H // ps, W // ps
    src = x[..., :gh * ps, :gw * ps].reshape(B, C, gh, ps, gw, ps).permute(0, 2, 4, 1, 3, 5)
    patches = torch.empty(src.shape, dtype=dtype, device=x.device)
    patches.copy_(src)  # gather and cast in one pass; (c, kh, kw) order, as the conv weight
    patches = patches.view(B * gh * gw, C * ps * ps)
    weight = proj.weight.reshape(proj.out_channels, C * ps * ps)
    out = torch.addmm(proj.bias, patches, weight.t()) if proj.bias is not None else patches @ weight.t()
    return out.view(B, gh * gw, proj.out_channels)


def embed_tokens(model, x: torch.Tensor, pos_embed: torch.Tensor, pad: int = 8) -> torch.Tensor:
    """The tokens the first block reads, in the compute dtype: patch embedding, the class token in the middle,
    the position embedding added in fp32, then padding rows of zeros up to a multiple of ``pad``. The same
    values as the reference path's ``cat`` / ``+ pos_embed`` / ``F.pad`` / ``.to(dtype)`` (fp32 sums rounded
    once), written straight into one padded buffer. The image now crosses memory once before the patch GEMM
    (gathered and cast in one copy) and the tokens once after it (the two position-embedding adds); before,
    the image twice and the tokens five times (casts, cat, add, pad), ~0.27 ms of a vim_small batch-128
    forward (2026-12-01, H200). (B, 3, H, W) -> (B, Lp, C)."""
    dtype = model.compute_dtype
    patches = patch_embed_forward(model.patch_embed, x, dtype)  # (B, M, C)
    B, M, C = patches.shape
    mid, L = M // 2, M + 1
    Lp = -(-L // pad) * pad
    pos = pos_embed.float()
    tokens = torch.empty((B, Lp, C), dtype=dtype, device=x.device)
    torch.add(patches[:, :mid], pos[:, :mid], out=tokens[:, :mid])  # in fp32 (promoted), rounded on the store
    tokens[:, mid] = (model.cls_token.float()[:, 0] + pos[:, mid]).to(dtype)
    torch.add(patches[:, mid:], pos[:, mid + 1:], out=tokens[:, mid + 1:L])
    tokens[:, L:].zero_()
    return tokens


def block_forward(block, hidden_states: torch.Tensor, residual: torch.Tensor | None, valid_len: int | None):
    """``Block.forward`` on the kernels: fused add + RMSNorm (fp32 residual), then the mixer."""
    from vim_deploy.ops import kernels

    dtype = block.mixer.in_proj.weight.dtype
    hidden_states, residual = kernels.add_rms_norm(hidden_states.to(dtype), residual, block.norm.weight, block.norm.eps)
    return mixer_forward(block.mixer, hidden_states, valid_len), residual
