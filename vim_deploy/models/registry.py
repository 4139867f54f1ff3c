"""A small model registry in timm's manner: entrypoint functions keyed by name, plus aliases."""

from __future__ import annotations

import difflib
from typing import Callable

from vim_deploy.errors import VimDeployError

_ENTRYPOINTS: dict[str, Callable] = {}
_ALIASES: dict[str, str] = {}
_CFGS: dict[str, dict] = {}


def register_model(fn: Callable) -> Callable:
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def register_alias(alias: str, name: str) -> None:
    _ALIASES[alias] = name


def register_cfg(name: str, cfg: dict) -> None:
    _CFGS[name] = cfg


def list_models(include_aliases: bool = True) -> list[str]:
    names = sorted(_ENTRYPOINTS)
    return sorted(set(names) | set(_ALIASES)) if include_aliases else names


def resolve_name(name: str) -> str:
    """Official name for ``name`` (an official name or a short alias); one-line error otherwise."""
    if name in _ENTRYPOINTS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, list_models(), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise VimDeployError(
        f"unknown model '{name}'.",
        f"{hint}Known models: {', '.join(sorted(_ALIASES))} (or their official hustvl/Vim names; "
        "`vim-deploy models` lists them).",
    )


def get_cfg(name: str) -> dict:
    return _CFGS[resolve_name(name)]


def aliases_of(name: str) -> list[str]:
    return [a for a, n in _ALIASES.items() if n == name]


def get_entrypoint(name: str) -> Callable:
    return _ENTRYPOINTS[resolve_name(name)]
