"""``<plan>.json``: what ``build_engine`` writes beside every plan (model, ONNX metadata, profile), read by
``validate --engine`` and the bench's tensorrt backend."""

from __future__ import annotations

import json
from pathlib import Path

from vim_deploy.errors import VimDeployError


def sidecar_path(plan: str | Path) -> Path:
    return Path(str(plan) + ".json")


def read_sidecar(plan: str | Path) -> dict:
    side = sidecar_path(plan)
    if not side.is_file():
        raise VimDeployError(f"'{side}' is missing: the engine's model and weights are unknown.",
                             "Build engines with `vim-deploy build`, which writes this file beside the plan.")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as e:
        raise VimDeployError(f"'{side}' is not valid JSON ({e.msg}).") from None
