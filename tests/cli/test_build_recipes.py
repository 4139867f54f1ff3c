"""`vim-deploy build --print-only / --target`: the per-JetPack recipes, printed without TensorRT."""

import pytest

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes")
    r = run_cli("export", "-q", "--precision", "fp16", "-m", "vim_tiny", "-o", "g.onnx", cwd=d)
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.parametrize("target, adapter, plugin_flag, typing", [
    ("jetpack-5.1", "IPluginV2DynamicExt", "--plugins=", "--fp16"),
    ("jetpack-6.0", "IPluginV2DynamicExt", "--plugins=", "--fp16"),
    ("jetpack-6.1", "IPluginV3", "--dynamicPlugins=", "--stronglyTyped"),
    ("jetpack-7", "IPluginV3", "--dynamicPlugins=", "--stronglyTyped"),
])
def test_target_recipe(graph, target, adapter, plugin_flag, typing):
    r = run_cli("build", "--onnx", "g.onnx", "--target", target, "--batch", "1:4:8", cwd=graph)
    assert r.returncode == 0, r.stderr
    assert f"plugin adapter {adapter}" in r.stdout and "opset 17" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("trtexec"))
    assert f"{plugin_flag}libvim_trt_plugin.so" in line and typing in line
    assert "--minShapes=input:1x3x224x224" in line and "--maxShapes=input:8x3x224x224" in line
    assert not (graph / "g.plan").exists()  # printing builds nothing


def test_print_only_lists_every_target(graph):
    r = run_cli("build", "--onnx", "g.onnx", "--print-only", cwd=graph)
    assert r.returncode == 0 and r.stdout.count("\ntrtexec ") + r.stdout.startswith("trtexec ") == 5


def test_unknown_target_is_one_line(graph):
    r = run_cli("build", "--onnx", "g.onnx", "--target", "jetpack-9", cwd=graph)
    assert r.returncode == 1 and "unknown target 'jetpack-9'" in r.stderr and "Traceback" not in r.stderr
