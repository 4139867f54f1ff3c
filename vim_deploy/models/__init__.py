"""Vim models: registry, architecture and checkpoint loading.

``create_model(name, checkpoint=...)`` is the one entry point the CLI and tests use.
"""

from __future__ import annotations

import os

import torch

from vim_deploy import log
from vim_deploy.errors import VimDeployError
from vim_deploy.models import vim as _vim  # noqa: F401  (registers the entrypoints)
from vim_deploy.models.checkpoint import infer_architecture, load_into, read_checkpoint, unwrap_state_dict
from vim_deploy.models.registry import get_cfg, get_entrypoint, list_models, resolve_name
from vim_deploy.models.vim import VisionMamba

__all__ = ["create_model", "list_models", "resolve_name", "get_cfg", "VisionMamba", "DEFAULT_SEED"]

DEFAULT_SEED = 0


def check_resolution(name: str, img_size: int) -> None:
    """One-line error unless ``img_size`` fits the model's patch / stride grid."""
    from vim_deploy.models.vim import ARCH_ARGS

    arch = ARCH_ARGS[resolve_name(name)]
    p, s = arch["patch_size"], arch["stride"]
    if img_size < p or (img_size - p) % s:
        raise VimDeployError(
            f"resolution {img_size} does not fit model '{name}' (patch {p}, stride {s}).",
            f"Use a size where (size - {p}) is a multiple of {s}, e.g. {max(p, img_size - (img_size - p) % s)}.",
        )


def create_model(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    img_size: int | None = None,
    use_ema: bool = False,
    seed: int = DEFAULT_SEED,
    unsafe_load: bool = False,
    allow_non_finite: bool = False,
    **kwargs,
) -> VisionMamba:
    """Build a registered Vim in eval mode, from ``checkpoint`` or with weights seeded by ``seed``.

    ``img_size`` builds the model for another resolution (must satisfy the patch/stride grid);
    a checkpoint's ``pos_embed`` is then resampled. ``num_classes`` follows the checkpoint's head
    unless given.
    """
    official = resolve_name(name)
    cfg = get_cfg(official)
    state_dict = None
    if checkpoint is not None:
        state_dict = unwrap_state_dict(read_checkpoint(checkpoint, unsafe=unsafe_load), use_ema=use_ema)
        n_cls = infer_architecture(state_dict).get("num_classes")
        if n_cls is not None and "num_classes" not in kwargs:
            kwargs["num_classes"] = n_cls
            default = get_cfg(official).get("num_classes")
            if default is not None and n_cls != default:
                log.info(f"the checkpoint's head has {n_cls} classes ({name}'s default: {default}): the model takes "
                         f"{n_cls}.")
    if img_size is not None:
        check_resolution(name, img_size)
        kwargs["img_size"] = img_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_entrypoint(official)(**kwargs)
    model.pretrained_cfg = dict(cfg, architecture=official)
    if state_dict is not None:
        load_into(model, state_dict, source=f"checkpoint '{os.fspath(checkpoint)}'", model_name=f"model '{name}'",
                  allow_non_finite=allow_non_finite)
    return model.eval()
