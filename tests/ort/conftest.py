"""Build libvim_ort_ops.so (CPU kernel) from the sources for the ORT tests.

ONNX Runtime's wheels ship no C headers: the tests run when ``VIM_DEPLOY_ORT_HEADERS`` names one or
more folders holding ``onnxruntime_c_api.h`` (``os.pathsep``-separated; e.g. ORT 1.23.2 and 1.29.0
from yalue/onnxruntime_go, kept outside this repository), and skip with that reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER_DIRS = [d for d in os.environ.get("VIM_DEPLOY_ORT_HEADERS", "").split(os.pathsep) if d]
NO_HEADERS = "VIM_DEPLOY_ORT_HEADERS not set (folders with ONNX Runtime's onnxruntime_c_api.h; ORT wheels ship none)"
SOURCES = [ROOT / "plugins" / "ort_ops" / "vimOrtOps.cpp", ROOT / "plugins" / "selective_scan" / "selectiveScanCpu.cpp"]


def compile_ops(include_dir: str, out: Path) -> subprocess.CompletedProcess:
    """The CPU-only library, warnings as errors (the CUDA build adds the CUDA core to the same sources)."""
    cmd = ["g++", "-std=c++17", "-O2", "-fno-trapping-math", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC", "-fvisibility=hidden",
           "-shared", "-Wl,--no-undefined", "-DVIM_ORT_WITH_CUDA=0", "-isystem", include_dir,
           f"-I{ROOT / 'plugins' / 'common'}", f"-I{ROOT / 'plugins' / 'selective_scan'}", *map(str, SOURCES), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="session")
def ort_ops_lib(tmp_path_factory) -> Path:
    if not HEADER_DIRS:
        pytest.skip(NO_HEADERS)
    out = tmp_path_factory.mktemp("ortops") / "libvim_ort_ops.so"
    r = compile_ops(HEADER_DIRS[0], out)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr[-3000:]
    return out
