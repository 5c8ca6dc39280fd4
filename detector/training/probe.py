"""The linear probe: logistic regression on CLIP frame embeddings (Ojha et al., 2023), the `clip-linear` recipe and the
teacher distilled into the MobileNetV3-LSTM."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .items import Item
from .validation import validation_summary

Scorer = Callable[[list[Item]], np.ndarray]


def frames_of(items: list[Item]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's embedding, its item's label, and the item index it belongs to."""
    embeddings = np.concatenate([item.embeddings for item in items])
    labels = np.concatenate([[item.label] * len(item.embeddings) for item in items])
    owners = np.concatenate([[i] * len(item.embeddings) for i, item in enumerate(items)])
    return embeddings, labels, owners


def mean_by_item(values: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(owners, weights=values, minlength=count) / np.maximum(np.bincount(owners, minlength=count), 1)


def fit_linear(train_items: list[Item], val_items: list[Item], cs=(0.1, 1.0, 10.0)) -> tuple[Scorer, dict]:
    """Logistic regression on frame embeddings, classes balanced, C chosen on validation; (score, description)."""
    from sklearn.linear_model import LogisticRegression

    x, y, _ = frames_of(train_items)
    best = None
    for c in cs:
        fit = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x, y)
        scorer = _linear_scorer(fit)
        summary = validation_summary(val_items, scorer(val_items)[:, 1])
        if best is None or summary["selection"] > best[0]:
            best = (summary["selection"], c, fit, scorer)
    _, c, fit, scorer = best
    return scorer, {"recipe": "clip-linear", "C": c, "weights": fit.coef_[0].tolist(), "bias": float(fit.intercept_[0])}


def fit_probe(train_items: list[Item], val_items: list[Item]) -> tuple[np.ndarray, float, Callable[[list[Item]], np.ndarray]]:
    """The second opinion a clip-lstm checkpoint carries (`ArchitectureConfig.probe`): the linear probe on the unit
    embedding (the `clip-linear` recipe) and the cut its logit, averaged over an item's frames, must reach for it to
    say fake: the top of the decision fitted on val (`metrics.choose_decision`: no val source has more than 3% of its
    reals over it). Returns (weights then bias, cut, items -> logits)."""
    from ..clip import EMBEDDING_DIM
    from .metrics import choose_decision

    unit = lambda items: [replace(item, embeddings=item.embeddings[:, :EMBEDDING_DIM]) for item in items]  # noqa: E731
    _, described = fit_linear(unit(train_items), unit(val_items))
    vector = np.array([*described["weights"], described["bias"]], dtype=np.float32)

    def logits(items: list[Item]) -> np.ndarray:
        return np.array([float((item.embeddings[:, :EMBEDDING_DIM] @ vector[:-1] + vector[-1]).mean()) for item in items])

    val_logits = logits(val_items)
    decision = choose_decision(val_logits, [item.label for item in val_items], [item.source for item in val_items])
    fake_at = min(max(decision["threshold"], decision["uncertain_band"][1]), 1 - 1e-6)
    cut = decision["temperature"] * (math.log(fake_at / (1 - fake_at)) - decision["bias"])
    return vector, round(cut, 5), logits


def _linear_scorer(fit) -> Scorer:
    def score(items: list[Item]) -> np.ndarray:
        x, _, owners = frames_of(items)
        per_item = mean_by_item(fit.decision_function(x), owners, len(items))
        return np.stack([per_item, per_item], axis=1)

    return score
