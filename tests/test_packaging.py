"""A wheel (what `pip install .` builds) carries the native sources and finds libraries without a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER_DIRS = [d for d in os.environ.get("VIM_DEPLOY_ORT_HEADERS", "").split(os.pathsep) if d]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel and installed (--target) outside the checkout."""
    pytest.importorskip("setuptools", reason="setuptools builds the wheel (the test extra installs it)")
    d = tmp_path_factory.mktemp("pkg")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(d / "whl"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((d / "whl").glob("vim_deploy-*.whl"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(d / "site"),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return {"wheel": wheel, "site": d / "site", "tmp": d}


def _run(installed, code, **env):
    e = {**os.environ, "PYTHONPATH": str(installed["site"]), "XDG_DATA_HOME": str(installed["tmp"] / "xdg"), **env}
    for k in ("VIM_DEPLOY_LIB_DIR", "VIM_DEPLOY_ORT_OPS_LIB", "VIM_DEPLOY_KERNELS_LIB", "VIM_DEPLOY_PLUGIN_LIB"):
        if k not in env:
            e.pop(k, None)
    return subprocess.run([sys.executable, "-c", code], cwd=installed["tmp"], env=e, capture_output=True, text=True,
                          timeout=600)


def test_wheel_ships_the_native_sources(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for f in ("CMakeLists.txt", "selective_scan/selectiveScanKernel.cu", "selective_scan/selectiveScanPluginLegacy.cpp",
              "ort_ops/vimOrtOps.cpp", "vim_block/causalConv1dKernel.cu", "tests/pluginHostDriver.cpp"):
        assert f"vim_deploy/_native/plugins/{f}" in names, f
    assert not [n for n in names if n.endswith((".so", ".o"))]


def test_installed_package_finds_sources_and_libraries_without_a_checkout(installed, tmp_path):
    code = ("import vim_deploy, vim_deploy.native.paths as n; "
            "print(vim_deploy.__file__); print(n.checkout_root()); print(n.sources_dir()); "
            "print((n.sources_dir() / 'CMakeLists.txt').is_file()); print(n.default_build_dir())")
    r = _run(installed, code)
    assert r.returncode == 0, r.stderr
    pkg, checkout, sources, has_cmake, build = r.stdout.split()
    assert pkg.startswith(str(installed["site"])) and checkout == "None"
    assert sources == str(installed["site"] / "vim_deploy" / "_native" / "plugins") and has_cmake == "True"
    assert build == str(installed["tmp"] / "xdg" / "vim-deploy" / "build")
    # the library search: $VIM_DEPLOY_LIB_DIR, then the per-user build folder
    libdir = tmp_path / "libs"
    libdir.mkdir()
    (libdir / "libvim_ort_ops.so").write_bytes(b"")
    code = "from vim_deploy.ort.session import ops_library_or_none as f; print(f())"
    r = _run(installed, code, VIM_DEPLOY_LIB_DIR=str(libdir))
    assert r.returncode == 0 and r.stdout.strip() == str(libdir / "libvim_ort_ops.so"), r.stderr
    user = installed["tmp"] / "xdg" / "vim-deploy" / "build"
    user.mkdir(parents=True, exist_ok=True)
    (user / "libvim_ort_ops.so").write_bytes(b"")
    r = _run(installed, code)
    assert r.returncode == 0 and r.stdout.strip() == str(user / "libvim_ort_ops.so"), r.stderr
    (user / "libvim_ort_ops.so").unlink()
    r = _run(installed, "from vim_deploy.ort.session import find_ops_library as f; f()")
    assert "was not found (searched $VIM_DEPLOY_ORT_OPS_LIB" in r.stderr


@pytest.mark.skipif(not HEADER_DIRS or shutil.which("cmake") is None,
                    reason="needs cmake and VIM_DEPLOY_ORT_HEADERS (ONNX Runtime C API headers; ORT wheels ship none)")
def test_plugin_build_from_the_installed_copy(installed):
    """`vim-deploy plugin build` from the wheel's sources, into the per-user folder (CPU part of the ORT
    library: nvcc is hidden from PATH to keep this quick), then found by create_session's search."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "nvcc").exists())
    code = ("import sys; from vim_deploy.cli import main; "
            f"sys.argv = ['vim-deploy', 'plugin', 'build', '--onnxruntime-include', {HEADER_DIRS[0]!r}]; main()")
    r = _run(installed, code, PATH=path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    built = installed["tmp"] / "xdg" / "vim-deploy" / "build" / "libvim_ort_ops.so"
    assert built.is_file(), r.stderr[-2000:]
    r = _run(installed, "from vim_deploy.ort.session import find_ops_library as f; print(f())", PATH=path)
    assert r.stdout.strip() == str(built), r.stderr
