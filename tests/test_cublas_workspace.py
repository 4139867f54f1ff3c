"""The command line runs cuBLAS without a workspace unless the user chose one (vim_deploy/cublas_workspace.py)."""

import os
import subprocess
import sys

from vim_deploy import cublas_workspace as cw


def test_unset_becomes_no_workspace_and_a_user_value_is_kept():
    env = {}
    assert cw.describe(env) == "PyTorch default"
    assert cw.prefer_no_workspace(env) == ":0:0" and env == {"CUBLAS_WORKSPACE_CONFIG": ":0:0"}
    assert cw.describe(env) == "CUBLAS_WORKSPACE_CONFIG=:0:0"
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert cw.prefer_no_workspace(env) == ":4096:8" and env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def _cli_env_after(args, env):
    """CUBLAS_WORKSPACE_CONFIG in the process after `vim_deploy.cli.main` ran `args`, as `VALUE <value>`."""
    code = ("import os\nfrom vim_deploy.cli import main\n"
            f"main({args!r})\n"
            "print('VALUE', os.environ.get('CUBLAS_WORKSPACE_CONFIG'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_cli_sets_it_before_a_command_runs_and_keeps_the_users():
    base = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    assert _cli_env_after(["models"], base) == "VALUE :0:0"
    assert _cli_env_after(["models"], {**base, "CUBLAS_WORKSPACE_CONFIG": ":16:8"}) == "VALUE :16:8"
