"""Bad input to every command other than `export` (whose matrix is in test_cli_errors.py): one line
`vim-deploy: error: ...` (with `Note:` where there is a next step) and exit status 1, or a usage error
(exit 2) for a bad flag value; never a traceback, never a written output file."""

import pytest

from tests.helpers import run_cli

# (arguments, text of the error line, exit status, whether a Note is expected)
CASES = {
    "build: missing ONNX": (["build", "--onnx", "nope.onnx", "-o", "out.plan"], "ONNX file 'nope.onnx' does not exist", 1, False),
    "build: not an ONNX file": (["build", "--onnx", "junk.onnx", "-o", "out.plan"], "is not a readable ONNX file", 1, False),
    "build: batch order": (["build", "--onnx", "t.onnx", "--batch", "8:1:4", "-o", "out.plan"], "1 <= MIN <= OPT <= MAX", 2, False),
    "build: onnxruntime-only graph": (["build", "--onnx", "ort.onnx", "-o", "out.plan"], "only vim-deploy's ONNX Runtime", 1, True),
    "build: unknown target": (["build", "--onnx", "t.onnx", "--target", "jetpack-99", "--print-only"], "unknown target 'jetpack-99'", 1, True),
    "validate: missing plan sidecar": (["validate", "--engine", "nope.plan"], "nope.plan.json' is missing", 1, True),
    "validate: junk ONNX": (["validate", "--onnx", "junk.onnx"], "not a readable ONNX file", 1, False),
    "validate: empty ONNX": (["validate", "--onnx", "empty.onnx"], "ONNX file 'empty.onnx' is empty (0 bytes)", 1, True),
    "build: empty ONNX": (["build", "--onnx", "empty.onnx", "--print-only"], "ONNX file 'empty.onnx' is empty (0 bytes)", 1, True),
    "validate: missing image folder": (["validate", "--onnx", "t.onnx", "--images", "no/such"], "image folder 'no/such' does not exist", 1, True),
    "validate: missing op library": (["validate", "--onnx", "t.onnx", "--runtime", "onnxruntime", "--ort-ops-library", "no/lib.so"],
                                     "op library 'no/lib.so' does not exist", 1, True),
    "validate: cosine out of range": (["validate", "--onnx", "t.onnx", "--min-cosine", "2"], "--min-cosine", 2, False),
    "bench: unknown backend": (["bench", "-m", "test_vim", "--backends", "nosuch", "--device", "cpu"], "unknown backend 'nosuch'", 1, True),
    "bench: resolution off the grid": (["bench", "-m", "test_vim", "--backends", "pytorch-fp32", "--resolutions", "70", "--device", "cpu"],
                                       "resolution 70 does not fit model 'test_vim'", 1, True),
    "bench: zero batch": (["bench", "-m", "test_vim", "--batch", "0", "--backends", "pytorch-fp32", "--device", "cpu"], "--batch", 2, False),
    "plugin build: bad TensorRT root": (["plugin", "build", "--tensorrt-root", "no/such"], "has no include/NvInferRuntime.h", 1, True),
    "plugin build: bad ORT include": (["plugin", "build", "--onnxruntime-include", "no/such"], "has no onnxruntime_c_api.h", 1, True),
    "export: unknown norm impl": (["export", "--norm-impl", "bogus"], "'bogus' is not one of", 2, False),
    "export: ORT-only op without the plugin graph": (["export", "-m", "test_vim", "--conv-impl", "op", "--scan-impl", "portable",
                                                      "-o", "out.onnx"], "--conv-impl op needs the plugin graph", 1, True),
}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    assert run_cli("export", "-q", "-m", "test_vim", "-o", "t.onnx", cwd=d).returncode == 0
    assert run_cli("export", "-q", "-m", "test_vim", "--ort-optimized", "-o", "ort.onnx", cwd=d).returncode == 0
    (d / "junk.onnx").write_bytes(b"\x00\x01 not a protobuf")
    (d / "empty.onnx").write_bytes(b"")
    return d


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, graphs):
    args, text, status, note = CASES[case]
    before = sorted(p.name for p in graphs.iterdir())
    r = run_cli(*args, "-q", cwd=graphs)
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr
    if status == 1:
        errors = [line for line in r.stderr.splitlines() if line.startswith("vim-deploy: error:")]
        assert len(errors) == 1 and text in errors[0], r.stderr
        assert ("Note:" in errors[0]) == note, errors[0]
    else:
        assert text in r.stderr, r.stderr
    assert sorted(p.name for p in graphs.iterdir()) == before  # nothing written, no temp files


def test_matrix_size():
    """The issue's bar: at least 25 bad-input cases across the commands (with export's matrix)."""
    from tests.cli.test_cli_errors import CASES as EXPORT_CASES

    assert len(CASES) + len(EXPORT_CASES) >= 25


def test_missing_optional_dependency_names_its_extra(monkeypatch):
    """An optional package that is not installed is one line naming the extra that brings it."""
    import sys

    from vim_deploy.errors import VimDeployError
    from vim_deploy.validate.inputs import load_images

    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(VimDeployError) as e:
        load_images("skimage", 224, 0.875, (0.5,) * 3, (0.5,) * 3)
    assert "vim-deploy[images]" in e.value.one_line()
