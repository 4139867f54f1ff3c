"""Packaging hook: ship the native sources (plugins/) inside the package, so `vim-deploy plugin build`
works from `pip install .` and from a wheel, not only from a checkout. Everything else is in
pyproject.toml. The copy lands in vim_deploy/_native/plugins of the build (never in the source tree);
editable installs read the checkout's plugins/ directly (vim_deploy.native.paths)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NATIVE_SUFFIXES = {".h", ".cuh", ".cu", ".cpp", ".txt", ".md", ".cmake"}


class BuildPyWithNativeSources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        src = Path(__file__).resolve().parent / "plugins"
        dst = Path(self.build_lib) / "vim_deploy" / "_native" / "plugins"
        if dst.exists():
            shutil.rmtree(dst)
        for f in sorted(src.rglob("*")):
            rel = f.relative_to(src)
            if f.is_file() and f.suffix in NATIVE_SUFFIXES and "build" not in rel.parts[:-1]:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst / rel)


# setuptools' staging folder, away from build/ (where `vim-deploy plugin build` puts the libraries)
setup(cmdclass={"build_py": BuildPyWithNativeSources}, options={"build": {"build_base": ".setuptools-build"}})
