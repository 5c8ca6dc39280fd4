"""The linear probe: logistic regression on CLIP frame embeddings (Ojha et al., 2023), the `clip-linear` recipe and the
teacher distilled into the MobileNetV3-LSTM."""

from __future__ import annotations

from collections.abc import Callable

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


def _linear_scorer(fit) -> Scorer:
    def score(items: list[Item]) -> np.ndarray:
        x, _, owners = frames_of(items)
        per_item = mean_by_item(fit.decision_function(x), owners, len(items))
        return np.stack([per_item, per_item], axis=1)

    return score
