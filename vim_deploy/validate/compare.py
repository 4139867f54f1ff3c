"""Comparison of logits against the reference, with explicit per-precision thresholds.

Metrics (over a whole run, candidate ``a`` vs reference ``b``, logits of shape (n, classes)):
  * ``max_abs``: max |a - b|;  ``max_rel``: max |a - b| / max |b|;
  * ``rel_l2``: ||a - b|| / ||b||;
  * ``cosine_min`` / ``cosine_mean``: per-sample cosine similarity of the logit vectors;
  * ``top1_agreement``: fraction of samples with the same argmax;
  * ``top5_agreement``: fraction of samples with the same top-5 set (order ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Defaults (overridable from the CLI). fp16 tolerates one top-1 flip in ten near-tied samples.
THRESHOLDS = {
    "fp32": {"min_cosine": 0.99999, "min_top1": 1.0, "max_rel_l2": 1e-4},
    "fp16": {"min_cosine": 0.999, "min_top1": 0.9, "max_rel_l2": 5e-2},
    "bf16": {"min_cosine": 0.99, "min_top1": 0.8, "max_rel_l2": 2e-1},
}


@dataclass
class Metrics:
    n: int
    max_abs: float
    max_rel: float
    rel_l2: float
    cosine_min: float
    cosine_mean: float
    top1_agreement: float
    top5_agreement: float

    def as_dict(self) -> dict:
        return asdict(self)


def compare_logits(a: np.ndarray, b: np.ndarray) -> Metrics:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if not np.isfinite(a).all():
        nan = float("nan")
        return Metrics(len(a), nan, nan, nan, nan, nan, 0.0, 0.0)
    diff = a - b
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
    k = min(5, a.shape[1])
    top5_a = np.sort(np.argsort(-a, axis=1)[:, :k], axis=1)
    top5_b = np.sort(np.argsort(-b, axis=1)[:, :k], axis=1)
    return Metrics(
        n=len(a),
        max_abs=float(np.abs(diff).max()),
        max_rel=float(np.abs(diff).max() / max(np.abs(b).max(), 1e-300)),
        rel_l2=float(np.linalg.norm(diff) / max(np.linalg.norm(b), 1e-300)),
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        top1_agreement=float((a.argmax(1) == b.argmax(1)).mean()),
        top5_agreement=float((top5_a == top5_b).all(1).mean()),
    )


def judge(m: Metrics, thresholds: dict) -> list[str]:
    """Reasons for failure (empty list = pass). NaN never passes."""
    why = []
    if not (m.cosine_min >= thresholds["min_cosine"]):
        why.append(f"cosine_min {m.cosine_min:.7f} < {thresholds['min_cosine']}")
    if not (m.top1_agreement >= thresholds["min_top1"]):
        why.append(f"top1_agreement {m.top1_agreement:.3f} < {thresholds['min_top1']}")
    if not (m.rel_l2 <= thresholds["max_rel_l2"]):
        why.append(f"rel_l2 {m.rel_l2:.3g} > {thresholds['max_rel_l2']}")
    return why
