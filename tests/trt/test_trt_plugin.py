"""The TensorRT plugin: its contract matches the exporter; both adapters (IPluginV2DynamicExt for
TensorRT 8.x, IPluginV3 for >= 10) compile warning-free against real TensorRT headers; the plugin
host test driver (plugins/tests/pluginHostDriver.cpp) drives the built library as TensorRT's builder
and runtime would; TensorRT-RTX's ONNX parser maps every exported node to it and builds a plan.

Header checks run when ``VIM_DEPLOY_TRT_HEADERS`` names one or more TensorRT ``include`` folders
(``os.pathsep``-separated; e.g. the tags 8.5.2, v8.6.1, v10.3.0 and v11.1 of the public
NVIDIA/TensorRT repository, kept outside this repository). The TensorRT-RTX check runs when
``tensorrt_rtx`` is importable and the plugin library has been built (``vim-deploy plugin build``).
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
DRIVER = ROOT / "plugins" / "tests" / "pluginHostDriver.cpp"
HEADER_DIRS = [d for d in os.environ.get("VIM_DEPLOY_TRT_HEADERS", "").split(os.pathsep) if d]
NO_HEADERS = "VIM_DEPLOY_TRT_HEADERS not set (TensorRT include folders to compile against)"


def trt_major(include_dir: str) -> int:
    text = (Path(include_dir) / "NvInferVersion.h").read_text()
    m = re.search(r"#define (?:NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) (\d+)", text)
    return int(m.group(1))


def adapter_source(include_dir: str) -> Path:
    return SRC / ("selectiveScanPluginLegacy.cpp" if trt_major(include_dir) < 10 else "selectiveScanPlugin.cpp")


def cuda_include() -> Path | None:
    cands = [Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include", Path("/usr/local/cuda/include")]
    if shutil.which("nvcc"):
        cands.insert(1, Path(shutil.which("nvcc")).resolve().parents[1] / "include")
    return next((c for c in cands if (c / "cuda_runtime_api.h").is_file()), None)


def test_plugin_contract_matches_exporter_schema():
    h = (SRC / "selectiveScanPluginCommon.h").read_text()
    cpp = (SRC / "selectiveScanPluginCommon.cpp").read_text()
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


@pytest.mark.skipif(not HEADER_DIRS, reason=NO_HEADERS)
@pytest.mark.parametrize("include_dir", HEADER_DIRS)
def test_plugin_compiles_warning_free(include_dir, tmp_path):
    cuda_inc = cuda_include()
    if cuda_inc is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found")
    for src in (SRC / "selectiveScanPluginCommon.cpp", adapter_source(include_dir)):
        cmd = ["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC", "-fvisibility=hidden",
               "-isystem", include_dir, "-isystem", str(cuda_inc), f"-I{SRC}", f"-I{SRC.parent / 'common'}", "-c", str(src),
               "-o", str(tmp_path / (src.stem + ".o"))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{src.name}: {r.stderr[-3000:]}"


@pytest.mark.skipif(not HEADER_DIRS, reason=NO_HEADERS)
@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("cmake") is None, reason="needs nvcc and cmake")
@pytest.mark.parametrize("include_dir", HEADER_DIRS)
def test_host_driver_drives_the_built_plugin(include_dir, tmp_path):
    """Build the plugin for these headers (CMake picks the adapter), then run the host driver on it:
    creators, fields, types, shapes, the format matrix, configure, workspace, serialization, clone,
    shape changes and empty-tensor enqueues, with no TensorRT library and no GPU."""
    build = tmp_path / "build"
    env = dict(os.environ, TENSORRT_INCLUDE_DIR=include_dir)
    for cmd in (["cmake", "-S", str(ROOT / "plugins"), "-B", str(build), "-DCMAKE_CUDA_ARCHITECTURES=90-real",
                 "-DVIM_WERROR=ON"], ["cmake", "--build", str(build), "-j", "2", "--target", "vim_trt_plugin"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    driver = tmp_path / "driver"
    base = ["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-isystem", include_dir, "-isystem",
            str(cuda_include()), str(DRIVER)]
    r = subprocess.run(base + ["-o", str(driver), "-ldl", "-rdynamic"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    # the GPU build (enqueue vs float64; run on the GPU machine by bench/run_plugin_driver_gpu.sh) compiles too
    r = subprocess.run(base + ["-DVIM_DRIVER_GPU", "-o", str(tmp_path / "driver_gpu"), "-ldl", "-rdynamic",
                               f"-L{cuda_include().parent / 'lib64'}", "-lcudart_static", "-lrt", "-lpthread"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(build / "stubs"))  # libnvinfer.so.8 for the V2 library's NEEDED
    r = subprocess.run([str(driver), str(build / "libvim_trt_plugin.so")], capture_output=True, text=True, env=run_env,
                       timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    passes = r.stdout.count("PASS ")
    assert passes >= (60 if trt_major(include_dir) >= 10 else 40) and "0 failure(s)" in r.stdout


def _rtx_or_skip():
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed")
    from vim_deploy.native.paths import PLUGIN_LIB, default_build_dir

    lib = Path(os.environ.get("VIM_DEPLOY_PLUGIN_LIB", default_build_dir() / PLUGIN_LIB))
    if not lib.is_file():
        pytest.skip("plugin library not built (vim-deploy plugin build --tensorrt-root ...)")
    return trt, lib


@pytest.mark.parametrize("precision,fused", [("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True)])
def test_trt_rtx_builds_vim_tiny_plan(precision, fused, tmp_path):
    trt, lib = _rtx_or_skip()
    from vim_deploy.export import PRESETS, ExportConfig, export_onnx
    from vim_deploy.trt.engine_build import BuildConfig, build_engine

    onnx_path = tmp_path / "vim_tiny.onnx"
    export_onnx(ExportConfig(model="vim_tiny", output=str(onnx_path), precision=precision,
                             form=PRESETS["fused" if fused else "plain"]))
    rep = build_engine(BuildConfig(onnx=str(onnx_path), output=str(tmp_path / "vim_tiny.plan"), plugin=str(lib),
                                   batch=(1, 8, 32)))
    print(rep)
    assert rep["plugin_layers"] == (24 if fused else 48) and rep["plan_bytes"] > 1_000_000
    assert rep["onnx_metadata"]["precision"] == precision and rep["onnx_metadata"]["img_size"] == "224"
    assert (tmp_path / "vim_tiny.plan").stat().st_size == rep["plan_bytes"]
    from vim_deploy.trt.sidecar import read_sidecar

    assert read_sidecar(tmp_path / "vim_tiny.plan")["onnx_metadata"]["precision"] == precision  # build_engine wrote it
