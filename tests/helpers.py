"""Helpers shared by the CLI-level tests."""

import subprocess
import sys


def run_cli(*args, cwd, timeout=600):
    """Run `python -m vim_deploy ARGS` as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "vim_deploy", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
