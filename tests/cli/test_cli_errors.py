"""Bad input: one line on stderr, exit status 1 (2 for flag errors), no traceback, no output file."""

import os

import pytest
import torch

from vim_deploy.models import create_model
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    torch.save({"model": create_model("vim_small").state_dict(), "epoch": 1}, d / "small.pth")
    data = (d / "small.pth").read_bytes()
    (d / "trunc.pth").write_bytes(data[: len(data) // 3])
    (d / "junk.pth").write_bytes(b"this is not a checkpoint\n" * 200)
    (d / "empty.pth").write_bytes(b"")
    torch.save([1, 2, 3], d / "list.pth")
    sd = create_model("vim_tiny").state_dict()
    sd["layers.3.mixer.in_proj.weight"][5, 7] = float("nan")
    torch.save({"model": sd}, d / "nan.pth")
    sd = create_model("vim_tiny").state_dict()
    sd["layers.0.mixer.x_proj_renamed.weight"] = sd.pop("layers.0.mixer.x_proj.weight")
    torch.save({"model": sd}, d / "renamed.pth")
    sd = create_model("vim_tiny").state_dict()
    sd["head.weight"] = torch.randn(1000, 200)
    torch.save({"model": sd}, d / "head_width.pth")
    sd = create_model("vim_tiny").state_dict()
    sd["head.weight"] = torch.randn(10, 192)
    torch.save({"model": sd}, d / "head_classes.pth")
    return d


CASES = {
    "missing checkpoint": (["--checkpoint", "{d}/nope.pth"], "does not exist"),
    "truncated checkpoint": (["--checkpoint", "{d}/trunc.pth"], "truncated or corrupt"),
    "corrupt checkpoint": (["--checkpoint", "{d}/junk.pth"], "corrupt"),
    "empty checkpoint": (["--checkpoint", "{d}/empty.pth"], "empty"),
    "not a state_dict": (["--checkpoint", "{d}/list.pth"], "not a state_dict"),
    "other variant": (["--checkpoint", "{d}/small.pth"], "pass --model vim_small"),
    "bad resolution": (["--img-size", "230"], "does not fit model"),
    "unknown model": (["--model", "vim_tinny"], "unknown model 'vim_tinny'"),
    "missing folder": (["-o", "{d}/no/such/dir/x.onnx"], "does not exist"),
    "output is a folder": (["-o", "{d}"], "is a directory"),
    "opset": (["--opset", "13"], "opset 13 is not supported"),
    "resolution too large for memory": (["--img-size", "100000"], "tokens: tracing needs about"),
    "NaN weight": (["--checkpoint", "{d}/nan.pth"], "'layers.3.mixer.in_proj.weight' with 1 NaN/inf value(s)"),
    "conv op without the plugin graph": (["--conv-impl", "op", "--scan-impl", "portable"],
                                         "--conv-impl op needs the plugin graph"),
    "padded tokens without the conv op": (["--pad-tokens", "8"], "--pad-tokens needs --conv-impl op"),
    "head of another width": (["--checkpoint", "{d}/head_width.pth"], "Apart from head.weight its tensors are those"),
    "head weight and bias disagree": (["--checkpoint", "{d}/head_classes.pth"],
                                      "inconsistent classifier: head.weight (10, 192) has 10 classes, head.bias (1000,)"),
    "zero batch": (["--batch-size", "0"], "batch size must be >= 1"),
    "renamed key, right variant": (["--checkpoint", "{d}/renamed.pth", "--model", "vim_tiny"],
                                   "(the model asked for): compare the missing and unexpected key names"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_bad_input(case, ckpts, tmp_path):
    args, expect = CASES[case]
    args = [a.format(d=ckpts) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.onnx")]
    before = sorted(os.listdir(ckpts))
    r = run_cli("export", "-q", *args, cwd=tmp_path)
    print(r.stderr)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("vim-deploy: error:")]
    assert len(errors) == 1 and expect in errors[0]
    assert not (tmp_path / "out.onnx").exists()
    assert sorted(os.listdir(ckpts)) == before  # no temp files left behind
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_unwritable_output(tmp_path):
    """A read-only folder (or, as root, who may write anywhere, a virtual file system)."""
    if os.geteuid() == 0:
        target = "/proc/vim-deploy-test.onnx"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "x.onnx")
    r = run_cli("export", "-q", "--model", "test_vim", "-o", target, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot write" in r.stderr
    assert not os.path.exists(target)
    if os.geteuid() == 0:  # not "No such file or directory" alone: what is wrong, and what to do
        assert "does not take new files" in r.stderr and "Write to a folder of your own" in r.stderr


def test_bad_flag_value_is_usage_error(tmp_path):
    r = run_cli("export", "--precision", "int3", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "int3" in r.stderr


def test_validate_bad_onnx(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
    r = run_cli("validate", "-q", "--onnx", str(tmp_path / "junk.onnx"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not a readable ONNX file" in r.stderr
    r = run_cli("validate", "-q", "--onnx", str(tmp_path / "none.onnx"), cwd=tmp_path)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_export_success_writes_file(tmp_path):
    r = run_cli("export", "--model", "test_vim", "-o", "t.onnx", "--report-json", "t.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SEEDED RANDOM" in r.stderr and "PASSED | wrote t.onnx: 4 VimSelectiveScan nodes" in r.stderr
    assert (tmp_path / "t.onnx").stat().st_size > 0 and (tmp_path / "t.json").exists()


def test_nan_weights_do_not_clobber_a_previous_output(ckpts, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous export")
    r = run_cli("export", "-q", "--checkpoint", str(ckpts / "nan.pth"), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 1 and "non-finite weights" in r.stderr and "Note: " in r.stderr
    assert out.read_bytes() == b"previous export"


def test_renamed_key_does_not_suggest_the_model_already_given(ckpts, tmp_path):
    r = run_cli("export", "-q", "--checkpoint", str(ckpts / "renamed.pth"), "--model", "vim_tiny", "-o",
                str(tmp_path / "x.onnx"), cwd=tmp_path)
    assert r.returncode == 1 and "pass --model vim_tiny" not in r.stderr


def test_models_lists_no_internal_test_architecture(tmp_path):
    r = run_cli("models", cwd=tmp_path)
    assert r.returncode == 0 and "vim_tiny" in r.stdout and "test_vim" not in r.stdout


def test_help_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom vim_deploy.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("NO-TORCH"), r.stdout + r.stderr
    assert "export" in r.stdout and "validate" in r.stdout


def test_build_refuses_the_onnxruntime_only_ops(tmp_path):
    """A graph exported with --ort-optimized has nodes only the ONNX Runtime library serves: `build` says so."""
    r = run_cli("export", "-q", "--model", "test_vim", "--ort-optimized", "-o", "c.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("build", "--onnx", "c.onnx", "-o", "c.plan", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "VimAddRmsNorm / VimBiCausalConv1dSilu nodes" in r.stderr and "--conv-impl conv" in r.stderr
    assert not (tmp_path / "c.plan").exists()
