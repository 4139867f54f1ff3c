"""Loading hustvl/Vim checkpoints unchanged, with errors that say what is wrong.

Upstream ``main.py`` saves ``{'model', 'optimizer', 'lr_scheduler', 'epoch', 'model_ema', 'scaler',
'args'}``; users also pass bare state_dicts or DDP-wrapped ones (``module.`` prefix). The loader
unwraps, remaps nothing (our parameter names are upstream's), resamples ``pos_embed`` when the model
was built for another resolution, and loads strictly. When the tensors do not fit, the error names
the missing / unexpected / mis-shaped keys and, when the shapes identify another registered
variant, names it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from typing import Mapping

import torch

from vim_deploy import log
from vim_deploy.errors import VimDeployError
from vim_deploy.models.registry import aliases_of


def read_checkpoint(path: str | os.PathLike, unsafe: bool = False) -> dict:
    """``torch.load`` with readable errors. ``unsafe`` allows full pickle (trusted files only)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VimDeployError(f"checkpoint '{path}' does not exist.")
    if os.path.isdir(path):
        raise VimDeployError(f"checkpoint '{path}' is a directory, not a .pth file.")
    if os.path.getsize(path) == 0:
        raise VimDeployError(f"checkpoint '{path}' is empty (0 bytes).", "Download it again.")
    try:
        if unsafe:
            return torch.load(path, map_location="cpu", weights_only=False)
        # Upstream checkpoints pickle their argparse.Namespace of training args.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            glob = str(e).split("Unsupported global:")[-1].split("was not an allowed global")[0].strip(" :.")
            raise VimDeployError(
                f"checkpoint '{path}' pickles Python objects that are not loaded by default ({glob[:120]}).",
                "If you trust the file, pass --unsafe-load (full pickle).",
            ) from None
        raise VimDeployError(f"checkpoint '{path}' is corrupt (not a PyTorch pickle).", "Download it again.") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise VimDeployError(
            f"checkpoint '{path}' is not a readable PyTorch checkpoint: {_first_sentence(e)}.",
            "The file is probably truncated or corrupt: download it again.",
        ) from None
    except Exception as e:  # torch.load on arbitrary bytes can raise nearly anything (IndexError, ...)
        raise VimDeployError(f"checkpoint '{path}' is corrupt ({type(e).__name__} while unpickling).",
                             "Download it again.") from None


def _first_sentence(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(". ")[0].rstrip(".")[:160]


def unwrap_state_dict(checkpoint, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Pick the model tensors out of an upstream training checkpoint (or a bare state_dict)."""
    if not isinstance(checkpoint, Mapping):
        raise VimDeployError(f"checkpoint holds a {type(checkpoint).__name__}, not a state_dict.")
    if use_ema:
        if "model_ema" not in checkpoint:
            raise VimDeployError("--ema was given but the checkpoint has no 'model_ema' entry.",
                                 f"Its top-level keys are: {', '.join(map(str, list(checkpoint)[:8]))}.")
        sd = checkpoint["model_ema"]
    elif "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        sd = checkpoint["model"]
    elif "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], Mapping):
        sd = checkpoint["state_dict"]
    else:
        sd = checkpoint
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise VimDeployError(f"checkpoint entry '{k}' is a {type(v).__name__}, not a tensor.",
                                 "Is this a Vim checkpoint?")
        out[re.sub(r"^(module\.|_orig_mod\.)", "", k)] = v
    return out


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """What the tensors say about the architecture (width, depth, d_state, tokens, classes)."""
    info = {}
    if "patch_embed.proj.weight" in state_dict:
        w = state_dict["patch_embed.proj.weight"]
        info["embed_dim"], info["patch_size"] = int(w.shape[0]), int(w.shape[-1])
    layer_ids = {int(m.group(1)) for k in state_dict for m in [re.match(r"layers\.(\d+)\.", k)] if m}
    if layer_ids:
        info["depth"] = max(layer_ids) + 1
    if "layers.0.mixer.A_log" in state_dict:
        info["d_state"] = int(state_dict["layers.0.mixer.A_log"].shape[1])
    if "pos_embed" in state_dict:
        info["num_tokens"] = int(state_dict["pos_embed"].shape[1])
    if "head.weight" in state_dict:
        info["num_classes"] = int(state_dict["head.weight"].shape[0])
    return info


def _tokens(arch: dict) -> int:
    img, p, s = arch.get("img_size", 224), arch["patch_size"], arch["stride"]
    return ((img - p) // s + 1) ** 2 + 1


def suggest_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Registered model whose architecture matches the tensors, if exactly one does."""
    from vim_deploy.models.vim import ARCH_ARGS

    info = infer_architecture(state_dict)
    hits = []
    for name, arch in ARCH_ARGS.items():
        if all(info.get(k) == arch.get(k, v) for k, v in
               (("embed_dim", None), ("depth", None), ("d_state", None))) and info.get("num_tokens") == _tokens(arch):
            hits.append(name)
    if len(hits) != 1:
        return None
    alias = aliases_of(hits[0])
    return alias[0] if alias else hits[0]


def _same_variant(a: str | None, b: str | None) -> bool:
    from vim_deploy.models.registry import resolve_name

    try:
        return a is not None and b is not None and resolve_name(a) == resolve_name(b)
    except Exception:  # noqa: BLE001 - an unknown name is simply not the same variant
        return False


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Refuse NaN / inf weights, naming the tensors: a graph exported from them computes NaN."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        k = bad[0]
        n = int((~torch.isfinite(state_dict[k])).sum())
        raise VimDeployError(
            f"{source} has non-finite weights: {len(bad)} tensor(s), e.g. '{k}' with {n} NaN/inf value(s).",
            "The checkpoint is damaged or was saved mid-divergence; pass --allow-non-finite to load it anyway.")


def load_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
              model_name: str = "the model", allow_non_finite: bool = False) -> None:
    """Strict load with pos_embed resampling and a one-line summary of any mismatch."""
    from vim_deploy.models.vim import resample_pos_embed

    if not allow_non_finite:
        check_finite(state_dict, source)

    own = model.state_dict()
    sd = dict(state_dict)
    hw, hb = sd.get("head.weight"), sd.get("head.bias")
    if hw is not None and hb is not None and hw.dim() == 2 and hb.dim() == 1 and hw.shape[0] != hb.shape[0]:
        raise VimDeployError(f"{source} has an inconsistent classifier: head.weight {tuple(hw.shape)} has {hw.shape[0]} "
                             f"classes, head.bias {tuple(hb.shape)} has {hb.shape[0]}.",
                             "The checkpoint was edited or saved incompletely; save it again from the training code.")
    # Resolution change: same width, different token count -> resample, as upstream fine-tuning does.
    pe = sd.get("pos_embed")
    if pe is not None and "pos_embed" in own and pe.shape != own["pos_embed"].shape and pe.shape[-1] == own["pos_embed"].shape[-1]:
        n_old = pe.shape[1] - 1
        g_old = int(round(n_old ** 0.5))
        if g_old * g_old == n_old:
            sd["pos_embed"] = resample_pos_embed(pe, (g_old, g_old), model.patch_embed.grid_size)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            k = mismatched[0]
            parts.append(f"{len(mismatched)} mis-shaped (e.g. {k}: {tuple(sd[k].shape)} in {source}, "
                         f"{tuple(own[k].shape)} in {model_name})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        guess = suggest_variant(sd)
        same = guess is not None and _same_variant(guess, getattr(model, "pretrained_cfg", {}).get("architecture"))
        if same and mismatched and not (missing or unexpected):  # names fine, a few tensors reshaped
            note = (f"Apart from {', '.join(mismatched[:3])} its tensors are those of '{guess}' (the model asked for): "
                    "those were changed after training or come from other code (another head or width?).")
        elif same:  # the shapes are this variant's: keys were renamed or come from another code base
            note = (f"Its shapes are those of '{guess}' (the model asked for): compare the missing and unexpected "
                    "key names; was the checkpoint saved by other code or renamed?")
        elif guess:
            note = f"Its tensors match '{guess}': pass --model {guess}."
        else:
            note = "Is it a hustvl/Vim classification checkpoint (middle class token, bimamba v2)?"
        raise VimDeployError(f"{source} does not fit {model_name}: {'; '.join(parts)}.", note)
    stored = sorted({str(v.dtype).replace("torch.", "") for k, v in sd.items()
                     if v.is_floating_point() and own[k].is_floating_point() and v.dtype != own[k].dtype})
    if stored:
        log.info(f"{source} stores {' / '.join(stored)} weights: loaded into the model's fp32 copy (the export's "
                 "--precision decides what the graph holds).")
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v.to(own[k].dtype))
