"""Every runtime behind the one Runner interface: infer (validate) and bind + run (bench) compute the same
logits, on the CPU with a tiny model."""

import numpy as np
import pytest
import torch

from vim_deploy.export import PRESETS, ExportConfig, export_onnx
from vim_deploy.models import create_model
from vim_deploy.runtimes.base import Runner


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(11).standard_normal((2, 3, 64, 64), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(images):
    with torch.no_grad():
        return create_model("test_vim")(torch.from_numpy(images)).numpy()


def _rel(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def test_torch_runner(images, reference):
    from vim_deploy.runtimes.torch import TorchRunner

    r = TorchRunner(create_model("test_vim"), "fp32", "cpu")
    assert isinstance(r, Runner) and r.name == "pytorch-fp32"
    assert _rel(r.infer(images), reference) == 0.0
    r.bind(images)
    r.run()
    r.release()
    assert r.model is None


@pytest.mark.parametrize("form", ["portable", "function"])
def test_onnxruntime_runner_infer_and_bound_runs(form, images, reference, tmp_path):
    from vim_deploy.runtimes.onnxrt import OrtRunner

    path = str(tmp_path / "g.onnx")
    export_onnx(ExportConfig(model="test_vim", output=path, form=PRESETS[form]))
    r = OrtRunner(path, provider="cpu")
    assert isinstance(r, Runner) and not r.tracks_memory
    assert _rel(r.infer(images), reference) < 1e-5
    r.bind(images)
    r.run()


def test_reference_runner_and_the_choice_of_runner(images, reference, tmp_path):
    from vim_deploy.runtimes.graphs import ReferenceRunner, runner_for_onnx

    path = str(tmp_path / "plain.onnx")
    export_onnx(ExportConfig(model="test_vim", output=path))
    runner, kind, meta = runner_for_onnx(path, runtime="reference")
    assert isinstance(runner, ReferenceRunner) and kind == "plugin" and meta["graph_form"] == "plain"
    assert _rel(runner.infer(images), reference) < 1e-5
    runner.bind(images)
    runner.run()  # the default run(): infer on the bound input


def test_every_runtime_module_has_a_runner():
    from vim_deploy.runtimes import deit, graphs, onnxrt, tensorrt, torch as torch_rt, upstream

    for cls in (deit.DeiTRunner, graphs.ReferenceRunner, onnxrt.OrtRunner, tensorrt.EngineRunner,
                torch_rt.TorchRunner, upstream.OfficialRunner):
        assert issubclass(cls, Runner)
        assert {"infer", "bind", "run", "release"} <= set(dir(cls))
