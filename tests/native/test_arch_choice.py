"""`vim-deploy plugin build` picks the architectures to build and says so up front, and shows CMake's
messages whole (CMake wraps a warning over several lines)."""

from vim_deploy.native import build


def test_the_gpus_present_are_the_default(monkeypatch):
    monkeypatch.setattr(build, "gpus_present", lambda: [("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA H100 80GB HBM3", "9.0")])
    archs, why = build.choose_archs(None)
    assert archs == "90-real" and "the GPUs here: NVIDIA H100 80GB HBM3" in why and "about 1.5 min" in why
    assert "--cuda-archs all" in why


def test_without_a_gpu_nvccs_default_target_with_its_ptx(monkeypatch):
    monkeypatch.setattr(build, "gpus_present", lambda: [])
    monkeypatch.setattr(build, "nvcc_default_arch", lambda: "75")
    archs, why = build.choose_archs(None)
    assert archs == "75-real;75-virtual" and "no GPU here" in why and "--cuda-archs all" in why


def test_all_and_explicit_lists():
    assert build.choose_archs("all")[0] is None and "about 7.5 min" in build.choose_archs("all")[1]
    assert build.choose_archs("87-real;90-real") == ("87-real;90-real",
                                                     "CUDA architectures: 87-real;90-real (--cuda-archs); about 2.2 min on 2 CPUs")


def test_cmake_warnings_come_out_whole():
    out = ("-- vim-deploy: ONNX Runtime headers: /x (#define ORT_API_VERSION 29)\n"
           "CMake Warning at CMakeLists.txt:172 (message):\n"
           "  vim-deploy: ONNX Runtime C API headers (onnxruntime_c_api.h) not found:\n"
           "  libvim_ort_ops.so is not built.  Set -DONNXRUNTIME_INCLUDE_DIR=<folder>\n"
           "\n"
           "-- Configuring done\n")
    lines = build._cmake_messages(out)
    assert lines[0].startswith("-- vim-deploy: ONNX Runtime headers")
    assert lines[1] == ("CMake Warning at CMakeLists.txt:172 (message): vim-deploy: ONNX Runtime C API headers "
                        "(onnxruntime_c_api.h) not found: libvim_ort_ops.so is not built.  Set "
                        "-DONNXRUNTIME_INCLUDE_DIR=<folder>")


def test_werror_makes_nvcc_warnings_errors(tmp_path):
    """--werror reaches nvcc (its warnings used to stay warnings): the CUDA core's compile flags say so."""
    import shutil
    import subprocess

    import pytest

    from vim_deploy.native import paths

    if shutil.which("nvcc") is None or shutil.which("cmake") is None:
        pytest.skip("nvcc and cmake are needed to configure the CUDA core")
    r = subprocess.run(["cmake", "-S", str(paths.sources_dir()), "-B", str(tmp_path), "-DVIM_WERROR=ON",
                        "-DCMAKE_CUDA_ARCHITECTURES=90-real"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    flags = (tmp_path / "CMakeFiles" / "vim_scan_core.dir" / "flags.make").read_text()
    assert "--Werror=all-warnings" in flags
