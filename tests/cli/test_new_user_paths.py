"""What a new user met on the CPU: default output names that never overwrite another export's, the trtexec /
polygraphy spellings of build's flags, one --batch vocabulary, and an unknown-backend line that lists the
forms that work."""

import pytest

from tests.helpers import run_cli


def test_default_names_say_what_differs(tmp_path):
    runs = {(): "test_vim.onnx", ("--form", "fused"): "test_vim_fused.onnx",
            ("--precision", "fp16"): "test_vim_fp16.onnx", ("--img-size", "96"): "test_vim_96.onnx",
            ("--precision", "fp16", "--form", "ort-optimized"): "test_vim_fp16_ort-optimized.onnx",
            ("--conv-impl", "op"): "test_vim_conv_impl-op.onnx"}
    for args, name in runs.items():
        r = run_cli("export", "-q", "-m", "test_vim", *args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name).is_file(), (args, sorted(p.name for p in tmp_path.iterdir()))
    assert len(list(tmp_path.glob("*.onnx"))) == len(runs)  # none overwrote another


def test_trtexec_spellings_and_one_batch_vocabulary(tmp_path):
    assert run_cli("export", "-q", "-m", "test_vim", "--batch", "2", "--static-batch", "-o", "g.onnx",
                   cwd=tmp_path).returncode == 0
    r = run_cli("build", "--onnx", "g.onnx", "--plugins", "my/libvim_trt_plugin.so", "--target", "jetpack-6.1",
                "--memPoolSize", "workspace:1G", "--hardwareCompatibilityLevel", "ampere_plus", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--dynamicPlugins=my/libvim_trt_plugin.so" in r.stdout and "--minShapes=input:1x3x64x64" in r.stdout
    r = run_cli("build", "--onnx", "g.onnx", "--print-only", "--memPoolSize", "scratch:1G", cwd=tmp_path)
    assert r.returncode == 2 and "use workspace:<size>[K|M|G]" in r.stderr
    r = run_cli("validate", "--onnx", "g.onnx", "--batch", "2", "--num-random", "2", "--runtime", "reference",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("value, mib", [("workspace:512M", 512), ("workspace:2G", 2048), ("workspace:256", 256),
                                        ("workspace:4096K", 4)])
def test_pool_limit_sizes(value, mib):
    from vim_deploy.cli.build import _pool_limit_mib

    assert _pool_limit_mib(value) == mib


def test_unknown_backend_lists_the_forms():
    from vim_deploy.bench.backends import make_backend
    from vim_deploy.errors import VimDeployError

    with pytest.raises(VimDeployError) as e:
        make_backend("ort-plugin-fp16-fused-ortops", "vim_tiny", None, "cpu")
    line = e.value.one_line()
    assert "onnxruntime-<fp32|fp16>[-<form>]" in line and "ort-optimized" in line and "portable" in line
