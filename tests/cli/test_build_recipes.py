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
    ("jetpack-7.2", "IPluginV3", "--dynamicPlugins=", "--stronglyTyped"),
    ("tensorrt-11", "IPluginV3", "--dynamicPlugins=", "--stronglyTyped"),
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
    from vim_deploy.trt import jetpack

    assert r.returncode == 0 and r.stdout.count("\ntrtexec ") + r.stdout.startswith("trtexec ") == len(jetpack.TARGETS)


def test_unknown_target_is_one_line(graph):
    r = run_cli("build", "--onnx", "g.onnx", "--target", "jetpack-9", cwd=graph)
    assert r.returncode == 1 and "unknown target 'jetpack-9'" in r.stderr and "Traceback" not in r.stderr


def test_tensorrt_11_rules(graph):
    """TensorRT 11 is strongly typed only (no --fp16 in its lines, --fp16 asked for is one clear error), JetPack
    6.x stays on TensorRT 8.6 / 10.3, and TensorRT 11.4.1 is JetPack 7.2.2+ only."""
    from vim_deploy.trt import jetpack

    for name, t in jetpack.TARGETS.items():
        if name.startswith("jetpack-6"):
            assert t.tensorrt in ("8.6.2", "10.3") and t.major < 11
        if t.major >= 11:
            r = run_cli("build", "--onnx", "g.onnx", "--target", name, cwd=graph)
            assert r.returncode == 0 and "--fp16" not in r.stdout and "--stronglyTyped" in r.stdout
    assert jetpack.target("jetpack-7.2").tensorrt == "11.4.1" and jetpack.target("jetpack-7.2").jetpack == "7.2.2+"
    r = run_cli("build", "--onnx", "g.onnx", "--target", "tensorrt-11", "--fp16", cwd=graph)
    assert r.returncode == 1 and "strongly typed networks only" in r.stderr and "--precision fp16" in r.stderr
