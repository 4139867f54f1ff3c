"""The `vim-deploy` command line: export, validate, models.

Every user-facing failure is a :class:`~vim_deploy.errors.VimDeployError`, printed as one line
(``vim-deploy: error: ...``) with exit status 1; bad flags are click usage errors (exit 2).
"""

from __future__ import annotations

import sys

import click

from vim_deploy import __version__
from vim_deploy.cublas_workspace import prefer_no_workspace
from vim_deploy.errors import VimDeployError


# name -> (module, attribute, one-line help). Commands are imported when run, not to list them:
# `vim-deploy --help` answers without importing torch (what most commands need).
_COMMANDS = {
    "export": ("vim_deploy.cli.export", "export_cmd", "Export a Vim model to ONNX (custom scan nodes or portable)."),
    "validate": ("vim_deploy.cli.validate", "validate_cmd", "Compare exported graphs / engines with the PyTorch model."),
    "build": ("vim_deploy.cli.build", "build_cmd", "Build a TensorRT engine, or print the per-JetPack recipe."),
    "bench": ("vim_deploy.cli.bench", "bench_cmd", "Benchmark backends over batch sizes and resolutions."),
    "triton": ("vim_deploy.cli.triton", "triton_cmd", "Write a Triton Inference Server model repository."),
    "plugin": ("vim_deploy.cli.plugin", "plugin_group", "Build the CUDA kernels, TensorRT plugin, ORT op library."),
    "models": ("vim_deploy.cli.models", "models_cmd", "List the registered models."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        import importlib

        module, attr, _ = _COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in _COMMANDS.items()])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="vim-deploy")
def cli():
    """Take Vision Mamba (Vim) models to production GPUs: export to ONNX with a selective-scan
    custom op, validate parity against PyTorch, build and benchmark TensorRT engines, run the
    exported graph on ONNX Runtime."""


def main(argv=None) -> int:
    prefer_no_workspace()  # before any command's first GEMM (vim_deploy/cublas_workspace.py says why)
    try:
        cli.main(args=argv, prog_name="vim-deploy", standalone_mode=False)
    except VimDeployError as e:
        click.echo(f"vim-deploy: error: {e.one_line()}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("vim-deploy: aborted.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("vim-deploy: interrupted.", err=True)
        return 130
    except (MemoryError, RuntimeError) as e:
        text = str(e).lower()
        if not isinstance(e, MemoryError) and "out of memory" not in text and "can't allocate" not in text \
                and "cannot allocate" not in text:
            raise
        click.echo("vim-deploy: error: out of memory "
                   f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}). "
                   "Note: use a smaller --batch-size / --img-size, or a machine with more memory.", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
