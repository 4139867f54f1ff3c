"""The TensorRT plugin: its contract matches the exporter; it compiles warning-free against real
TensorRT headers; TensorRT-RTX's ONNX parser maps every exported node to it and builds a plan.

Header checks run when ``VIM_DEPLOY_TRT_HEADERS`` names one or more TensorRT ``include`` folders
(``os.pathsep``-separated; e.g. TensorRT 11.x and 10.3 from the public NVIDIA/TensorRT repository,
kept outside this repository). The TensorRT-RTX check runs when ``tensorrt_rtx`` is importable and
the plugin library has been built (``vim-deploy plugin build``).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vim_deploy.ops import schema

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "plugins" / "selective_scan"
HEADER_DIRS = [d for d in os.environ.get("VIM_DEPLOY_TRT_HEADERS", "").split(os.pathsep) if d]


def test_plugin_contract_matches_exporter_schema():
    h = (SRC / "selectiveScanPlugin.h").read_text()
    cpp = (SRC / "selectiveScanPlugin.cpp").read_text()
    assert re.search(r'kSELECTIVE_SCAN_PLUGIN_NAME\{"(\w+)"\}', h).group(1) == schema.OP_NAME
    assert re.search(r'kBI_SELECTIVE_SCAN_PLUGIN_NAME\{"(\w+)"\}', h).group(1) == schema.BI_OP_NAME
    assert int(re.search(r"kNB_BI_INPUTS\{(\d+)\}", h).group(1)) == len(schema.BI_INPUT_NAMES)
    for attr in (*schema.BI_INT_ATTRIBUTES, *schema.BI_FLOAT_ATTRIBUTES):
        assert f'"{attr}"' in cpp, attr
    bi_fp32 = [schema.BI_INPUT_NAMES.index(n) for n in schema.BI_FLOAT32_INPUTS]
    assert bi_fp32 == [2, 5, 6, 9, 12, 13] and "pos == 2 || pos == 5 || pos == 6 || pos == 9 || pos == 12 || pos == 13" in cpp
    assert re.search(r'kSELECTIVE_SCAN_PLUGIN_VERSION\{"(\w+)"\}', h).group(1) == schema.PLUGIN_VERSION
    assert int(re.search(r"kNB_INPUTS\{(\d+)\}", h).group(1)) == len(schema.INPUT_NAMES)
    for attr in schema.INT_ATTRIBUTES:
        assert f'"{attr}"' in cpp, attr
    # fp32-only inputs are A, D, delta_bias at positions 2, 5, 7
    fp32_pos = [schema.INPUT_NAMES.index(n) for n in schema.FLOAT32_INPUTS]
    assert "pos == 2 || pos == 5 || pos == 7" in cpp and fp32_pos == [2, 5, 7]


@pytest.mark.skipif(not HEADER_DIRS, reason="VIM_DEPLOY_TRT_HEADERS not set (TensorRT include folders to compile against)")
@pytest.mark.parametrize("include_dir", HEADER_DIRS)
def test_plugin_compiles_warning_free(include_dir, tmp_path):
    cands = [Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include", Path("/usr/local/cuda/include")]
    if shutil.which("nvcc"):
        cands.insert(1, Path(shutil.which("nvcc")).resolve().parents[1] / "include")
    cuda_inc = next((c for c in cands if (c / "cuda_runtime_api.h").is_file()), None)
    if cuda_inc is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found")
    cmd = ["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC", "-fvisibility=hidden",
           "-isystem", include_dir, "-isystem", str(cuda_inc), f"-I{SRC}", "-c", str(SRC / "selectiveScanPlugin.cpp"),
           "-o", str(tmp_path / "plugin.o")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr[-3000:]


def _rtx_or_skip():
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed")
    from vim_deploy.trt.native_build import DEFAULT_BUILD_DIR, PLUGIN_LIB

    lib = Path(os.environ.get("VIM_DEPLOY_PLUGIN_LIB", DEFAULT_BUILD_DIR / PLUGIN_LIB))
    if not lib.is_file():
        pytest.skip("plugin library not built (vim-deploy plugin build --tensorrt-root ...)")
    return trt, lib


@pytest.mark.parametrize("precision,fused", [("fp32", False), ("fp16", False), ("fp16", True)])
def test_trt_rtx_builds_vim_tiny_plan(precision, fused, tmp_path):
    trt, lib = _rtx_or_skip()
    from vim_deploy.export import ExportConfig, export_onnx
    from vim_deploy.trt.engine_build import BuildConfig, build_engine

    onnx_path = tmp_path / "vim_tiny.onnx"
    export_onnx(ExportConfig(model="vim_tiny", output=str(onnx_path), precision=precision, fuse_bidirectional=fused))
    rep = build_engine(BuildConfig(onnx=str(onnx_path), output=str(tmp_path / "vim_tiny.plan"), plugin=str(lib),
                                   batch=(1, 8, 32)))
    print(rep)
    assert rep["plugin_layers"] == (24 if fused else 48) and rep["plan_bytes"] > 1_000_000
    assert rep["onnx_metadata"]["precision"] == precision and rep["onnx_metadata"]["img_size"] == "224"
    assert (tmp_path / "vim_tiny.plan").stat().st_size == rep["plan_bytes"]
