"""Architecture: upstream key names and shapes for all variants, forward equivalences, loading."""

import argparse

import pytest
import torch

from vim_deploy.errors import VimDeployError
from vim_deploy.models import create_model, list_models, resolve_name

VARIANTS = {  # alias: (embed_dim, tokens at 224)
    "vim_tiny": (192, 197),
    "vim_small": (384, 197),
    "vim_base": (768, 197),
    "vim_tiny_stride8": (192, 730),
    "vim_small_stride8": (384, 730),
}


def expected_keys(depth=24):
    keys = {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "norm_f.weight",
            "head.weight", "head.bias"}
    mixer = ["A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
             "dt_proj.bias", "A_b_log", "conv1d_b.weight", "conv1d_b.bias", "x_proj_b.weight", "dt_proj_b.weight",
             "dt_proj_b.bias", "D_b", "out_proj.weight"]
    for i in range(depth):
        keys.add(f"layers.{i}.norm.weight")
        keys.update(f"layers.{i}.mixer.{k}" for k in mixer)
    return keys


@pytest.mark.parametrize("alias", list(VARIANTS))
def test_state_dict_keys_and_shapes(alias):
    C, tokens = VARIANTS[alias]
    sd = create_model(alias).state_dict()
    assert len(sd) == 415
    assert set(sd) == expected_keys()
    E, R, N = 2 * C, -(-C // 16), 16
    shapes = {
        "patch_embed.proj.weight": (C, 3, 16, 16), "cls_token": (1, 1, C), "pos_embed": (1, tokens, C),
        "head.weight": (1000, C), "norm_f.weight": (C,),
        "layers.3.mixer.in_proj.weight": (2 * E, C), "layers.3.mixer.out_proj.weight": (C, E),
        "layers.3.mixer.conv1d.weight": (E, 1, 4), "layers.3.mixer.conv1d_b.bias": (E,),
        "layers.3.mixer.x_proj.weight": (R + 2 * N, E), "layers.3.mixer.x_proj_b.weight": (R + 2 * N, E),
        "layers.3.mixer.dt_proj.weight": (E, R), "layers.3.mixer.dt_proj_b.bias": (E,),
        "layers.3.mixer.A_log": (E, N), "layers.3.mixer.A_b_log": (E, N), "layers.3.mixer.D_b": (E,),
    }
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k


def test_aliases_resolve_to_official_names():
    assert resolve_name("vim_tiny").startswith("vim_tiny_patch16_224_bimambav2")
    assert resolve_name("vim_base") == "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2"
    assert {"vim_tiny", "vim_small", "vim_base", "vim_tiny_stride8", "vim_small_stride8"} <= set(list_models())


def test_flip_and_reverse_backward_branches_agree():
    x = torch.randn(2, 3, 64, 64)
    a = create_model("test_vim", bidirectional="flip")
    b = create_model("test_vim", bidirectional="reverse")
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), rtol=1e-5, atol=1e-6)


def test_backward_branch_matters():
    """The backward branch (dropped by upstream's slow path) must change the output."""
    m = create_model("test_vim")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = m(x)
        for layer in m.layers:
            layer.mixer.x_proj_b.weight.mul_(1.5)
        assert not torch.allclose(y, m(x), atol=1e-6)


def test_fp16_policy_close_to_fp32():
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y32 = create_model("test_vim")(x)
        y16 = create_model("test_vim").set_precision("fp16")(x)
    cos = torch.nn.functional.cosine_similarity(y32, y16).min().item()
    assert y16.dtype == torch.float32 and cos > 0.999


def test_seeded_weights_are_deterministic():
    a, b = create_model("test_vim", seed=3), create_model("test_vim", seed=3)
    c = create_model("test_vim", seed=4)
    assert torch.equal(a.pos_embed, b.pos_embed) and not torch.equal(a.pos_embed, c.pos_embed)


def test_upstream_checkpoint_format_loads(tmp_path):
    """upstream main.py layout: model / model_ema / args (argparse.Namespace) / epoch."""
    src = create_model("test_vim", seed=5)
    ema = create_model("test_vim", seed=6)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": src.state_dict(), "model_ema": ema.state_dict(), "epoch": 299,
                "args": argparse.Namespace(model="vim_tiny", lr=5e-4)}, path)
    m = create_model("test_vim", checkpoint=str(path))
    assert torch.equal(m.pos_embed, src.pos_embed)
    m_ema = create_model("test_vim", checkpoint=str(path), use_ema=True)
    assert torch.equal(m_ema.pos_embed, ema.pos_embed)
    # DDP prefix and bare state_dict
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, path)
    assert torch.equal(create_model("test_vim", checkpoint=str(path)).cls_token, src.cls_token)


def test_other_resolution_resamples_pos_embed(tmp_path):
    src = create_model("test_vim", seed=5)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": src.state_dict()}, path)
    m = create_model("test_vim", checkpoint=str(path), img_size=96)
    assert m.pos_embed.shape == (1, 37, 64)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 96, 96)).shape == (1, 10)
    # online resampling for an input of another size gives the same as a model built for it
    with torch.no_grad():
        x = torch.randn(1, 3, 96, 96)
        assert torch.allclose(src(x), m(x), rtol=1e-5, atol=1e-6)


def test_wrong_variant_is_named(tmp_path):
    path = tmp_path / "small.pth"
    torch.save({"model": create_model("vim_small").state_dict()}, path)
    with pytest.raises(VimDeployError, match="pass --model vim_small"):
        create_model("vim_tiny", checkpoint=str(path))


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = create_model("test_vim").state_dict()
    sd.pop("layers.1.mixer.D_b")
    sd["layers.1.mixer.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(VimDeployError, match=r"1 missing \(e.g. layers.1.mixer.D_b\).*1 unexpected"):
        create_model("test_vim", checkpoint=str(path))


@pytest.mark.parametrize("size", [100, 8, 230])
def test_bad_resolution(size):
    with pytest.raises(VimDeployError, match="does not fit"):
        create_model("vim_tiny", img_size=size)
