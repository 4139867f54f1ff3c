"""The `vim-deploy` command line: export, validate, models.

Every user-facing failure is a :class:`~vim_deploy.errors.VimDeployError`, printed as one line
(``vim-deploy: error: ...``) with exit status 1; bad flags are click usage errors (exit 2).
"""

from __future__ import annotations

import sys

import click

from vim_deploy import __version__
from vim_deploy.errors import VimDeployError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="vim-deploy")
def cli():
    """Take Vision Mamba (Vim) models to production GPUs: export to ONNX with a selective-scan
    custom op, validate parity against PyTorch, build and benchmark TensorRT engines."""


def _register():
    from vim_deploy.cli import bench, build, export, models, plugin, validate

    cli.add_command(plugin.plugin_group)
    cli.add_command(build.build_cmd)
    cli.add_command(bench.bench_cmd)
    cli.add_command(export.export_cmd)
    cli.add_command(validate.validate_cmd)
    cli.add_command(models.models_cmd)


_register()


def main(argv=None) -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
