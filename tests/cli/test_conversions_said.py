"""Conversions vim-deploy makes on the user's behalf are each said in one log line: half-precision checkpoints
loaded into fp32, a head whose class count the checkpoint sets, non-RGB photos converted."""

import numpy as np
import torch
from PIL import Image

from tests.helpers import run_cli
from vim_deploy.models import create_model


def test_fp16_checkpoint_and_its_head_are_said(tmp_path):
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in create_model("test_vim", num_classes=7).state_dict().items()}
    torch.save({"model": sd}, tmp_path / "c.pth")
    r = run_cli("export", "-m", "test_vim", "-c", "c.pth", "-o", "g.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "stores float16 weights: loaded into the model's fp32 copy" in r.stderr
    assert "the checkpoint's head has 7 classes (test_vim's default: 10)" in r.stderr


def test_non_rgb_photos_are_said(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 90), dtype=np.uint8), mode="L").save(imgs / "gray.png")
    Image.fromarray(rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)).save(imgs / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (80, 90, 4), dtype=np.uint8)).convert("CMYK").save(imgs / "cmyk.jpg")
    assert run_cli("export", "-q", "-m", "test_vim", "-o", "g.onnx", cwd=tmp_path).returncode == 0
    r = run_cli("validate", "--onnx", "g.onnx", "--images", "imgs", "--num-random", "1", "--runtime", "reference",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 image(s) in L mode converted to RGB" in r.stderr and "1 image(s) in CMYK mode converted" in r.stderr
