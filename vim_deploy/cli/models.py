"""`vim-deploy models`: the registered Vim variants."""

import click

from vim_deploy.models import get_cfg, list_models
from vim_deploy.models.registry import aliases_of
from vim_deploy.models.vim import ARCH_ARGS


@click.command("models")
def models_cmd():
    """List the registered models, their aliases, shapes and upstream checkpoints."""
    click.echo(f"{'alias':<18} {'width':>5} {'depth':>5} {'stride':>6} {'tokens':>10}  checkpoint / official name")
    for name in list_models(include_aliases=False):
        if name.startswith("test_"):  # tiny architectures for this project's own tests
            continue
        arch, cfg = ARCH_ARGS[name], get_cfg(name)
        img = arch.get("img_size", 224)
        tokens = ((img - arch["patch_size"]) // arch["stride"] + 1) ** 2 + 1
        alias = ",".join(aliases_of(name)) or name
        click.echo(f"{alias:<18} {arch['embed_dim']:>5} {arch['depth']:>5} {arch['stride']:>6} {tokens:>10}  "
                   f"{cfg.get('checkpoint') or '-'}  {name if alias != name else ''}")
