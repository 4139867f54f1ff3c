"""The printed engine recipes: trtexec and polygraphy lines come from one profile (so they build the same
engine), --print-only refuses what build refuses, and a missing TensorRT is the first thing build says."""

import pytest

from tests.helpers import run_cli
from vim_deploy.trt import jetpack, recipes


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes")
    assert run_cli("export", "-q", "-m", "test_vim", "-o", "g.onnx", cwd=d).returncode == 0
    assert run_cli("export", "-q", "-m", "test_vim", "--form", "ort-optimized", "-o", "ort.onnx", cwd=d).returncode == 0
    return d


@pytest.mark.parametrize("target", list(jetpack.TARGETS))
def test_trtexec_and_polygraphy_lines_build_the_same_profile(target):
    cmds = jetpack.commands(jetpack.target(target), "g.onnx", "g.plan", "lib.so", "input", [-1, 3, 224, 224], (1, 4, 8))
    want = {"min": (1, 3, 224, 224), "opt": (4, 3, 224, 224), "max": (8, 3, 224, 224)}
    assert recipes.parse_profiles(cmds["trtexec"]) == want == recipes.parse_profiles(cmds["polygraphy"])
    typed = jetpack.target(target).major >= 10
    assert ("--stronglyTyped" in cmds["trtexec"]) == typed == ("--strongly-typed" in cmds["polygraphy"])
    assert ("--fp16" in cmds["trtexec"]) == (not typed) == ("--fp16" in cmds["polygraphy"])


def test_print_only_lines_agree_for_every_target(graphs):
    r = run_cli("build", "--onnx", "g.onnx", "--print-only", "--batch", "2:4:16", cwd=graphs)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith(("trtexec", "polygraphy"))]
    assert len(lines) == 2 * len(jetpack.TARGETS)
    for line in lines:
        assert recipes.parse_profiles(line) == {"min": (2, 3, 64, 64), "opt": (4, 3, 64, 64), "max": (16, 3, 64, 64)}


def test_build_report_lines_agree():
    from vim_deploy.trt.engine_build import BuildConfig, equivalent_commands

    cfg = BuildConfig(onnx="g.onnx", output="g.plan", batch=(1, 8, 32), workspace_mib=512)
    cmds = equivalent_commands(cfg, "input", [-1, 3, 224, 224], True, "lib.so")
    assert recipes.parse_profiles(cmds["trtexec"]) == recipes.parse_profiles(cmds["polygraphy"])
    assert "--memPoolSize=workspace:512M" in cmds["trtexec"] and "workspace:512M" in cmds["polygraphy"]


def test_print_only_refuses_what_build_refuses(graphs):
    for args in (["--print-only"], ["--target", "jetpack-6.1"]):
        r = run_cli("build", "--onnx", "ort.onnx", *args, cwd=graphs)
        assert r.returncode == 1 and "only vim-deploy's ONNX Runtime library serves" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "trtexec" not in r.stdout


def test_missing_tensorrt_is_said_before_the_missing_plugin(graphs, monkeypatch, tmp_path):
    from vim_deploy.errors import VimDeployError
    from vim_deploy.trt import engine_build

    def no_trt():
        raise VimDeployError("no TensorRT Python package is installed (tensorrt: No module named 'tensorrt').")

    monkeypatch.setattr(engine_build, "import_backend", no_trt)
    monkeypatch.setenv("VIM_DEPLOY_PLUGIN_LIB", str(tmp_path / "missing.so"))
    with pytest.raises(VimDeployError, match="no TensorRT Python package"):
        engine_build.build_engine(engine_build.BuildConfig(onnx=str(graphs / "g.onnx"), output=str(tmp_path / "g.plan")))
