"""Decision rules learned from scores rather than set by hand: one fitted out of source, and the stacked pair.

**Out of source**: what a model tells users about kinds of media it never saw.

A rule fitted on validation files (`metrics.choose_decision`) is fitted where the model is at its best: val comes from
the sources it trained on. On what users meet, its scores are less extreme and differently placed, so most of them
fall inside a band chosen on val, and users are told "uncertain". Here the rule is fitted on the scores a recipe
gives to sources it never saw, the held-out files of the cross-source folds (`crossval`):

- Platt scaling (temperature, bias) on those scores, every fold weighted alike;
- the band's top: the lowest probability at which no fold's reals are labelled fake more often than
  `metrics.MAX_FALSE_POSITIVE_RATE` (a wrong "fake" on a real person is the worst answer);
- the band's bottom: the highest probability at which, averaged over folds, no more than `MAX_MISSED` of the fakes
  are labelled real (telling a user a fake is real is the next worst; "uncertain" comes after it).

`python -m detector crossval ... --recipes R,R@oos` measures the rule without flattering it: on each fold, the rule
is fitted on the other folds' held-out scores only (`train-clip --rule-from` ships it). Measured in run 4 of
docs/cross-source.md: it widens the band and decides less, so no checkpoint ships it.

**The stacked pair** (`fit_pair_stack`): the fast and the accurate view's calibrated logits combined by logistic
regression on val, with the decision a checkpoint's own rule gets; the served `default+accurate` decides by it
(detector/ensemble.py).
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import MAX_FALSE_POSITIVE_RATE, calibrated_probabilities, threshold_for_false_positives

MAX_MISSED = 0.10
SUFFIX = "@oos"  # a crossval recipe name with this suffix: the base recipe's scores under the out-of-source rule


def fit_rule(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_fpr: float = MAX_FALSE_POSITIVE_RATE,
             max_missed: float = MAX_MISSED) -> dict:  # fmt: skip
    """A decision (temperature, bias, threshold, uncertain band) from out-of-source logits, their labels (1 = fake)
    and the fold (`groups`) each came from."""
    logits, labels, groups = np.asarray(logits, float), np.asarray(labels, int), np.asarray(groups)
    temperature, bias = _weighted_platt(logits, labels, groups)
    decision = {"temperature": round(temperature, 5), "bias": round(bias, 5)}
    return _with_band(decision, calibrated_probabilities(logits, decision), labels, groups, max_fpr, max_missed)


def _with_band(decision: dict, probs: np.ndarray, labels, groups, max_fpr: float, max_missed: float) -> dict:
    high = _lowest_within_fpr(probs, labels, groups, max_fpr)
    low = min(_highest_within_missed(probs, labels, groups, max_missed), high)
    decision["uncertain_band"] = [math.floor(low * 1e4) / 1e4, math.ceil(high * 1e4) / 1e4]
    decision["threshold"] = decision["uncertain_band"][1]
    return decision


def _weighted_platt(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Platt scaling with every (fold, class) weighted alike, so a large fold or class does not set the scale."""
    if labels.min() == labels.max():
        return 1.0, 0.0
    (slope,), bias = _weighted_logistic(logits.reshape(-1, 1), labels, groups)
    if slope <= 1e-3:
        return 1.0, 0.0
    return 1.0 / slope, bias


def _weighted_logistic(x: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[list[float], float]:
    from sklearn.linear_model import LogisticRegression

    cells = {(g, y): np.sum((groups == g) & (labels == y)) for g, y in zip(groups, labels)}
    weights = np.array([1.0 / cells[(g, y)] for g, y in zip(groups, labels)])
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(x, labels, sample_weight=weights * len(cells))
    return [float(w) for w in fit.coef_[0]], float(fit.intercept_[0])


def _lowest_within_fpr(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_fpr: float) -> float:
    """The lowest probability at which, in every group, at most `max_fpr` of the reals score at or above it (never
    below one half nor above 0.9999)."""
    return min(max(0.5, threshold_for_false_positives(labels, probs, groups, max_fpr)), 0.9999)


def _highest_within_missed(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_missed: float) -> float:
    """The highest probability at which, averaged over the groups with fakes, at most `max_missed` of their fakes
    score at or below it."""
    fakes = [np.sort(probs[(labels == 1) & (groups == g)]) for g in np.unique(groups[labels == 1])]
    if not fakes:
        return 0.5
    candidates = np.unique(np.concatenate(fakes))
    best = 0.0
    for t in candidates:  # ascending: the missed share only grows
        missed = np.mean([np.searchsorted(f, t, side="right") / len(f) for f in fakes])
        if missed > max_missed:
            break
        best = float(t)
    return best


# --------------------------------------------------------------------------------------- a pair, stacked on val


def fit_pair_stack(view_logits: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict:
    """The rule of a pair of views learned on validation scores: logistic stacking of the two views' calibrated
    logits ((N, 2), every (source, class) weighted alike) into one logit, then the decision a checkpoint's own
    rule is fitted with (`metrics.choose_decision`: Platt, balanced threshold, uncertain band, band top raised until no
    val source has more than 3% of its reals labelled fake). Returns {"weights": [fast, accurate, bias], "temperature",
    "bias", "threshold", "uncertain_band"}: the stacked probability is sigmoid((logits @ w[:2] + w[2]) / T + bias)."""
    from .metrics import choose_decision

    view_logits, labels, sources = np.asarray(view_logits, float), np.asarray(labels, int), np.asarray(sources)
    weights, intercept = _weighted_logistic(view_logits, labels, sources)
    stacked = view_logits @ np.array(weights) + intercept
    decision = choose_decision(stacked, labels, sources)
    return {"weights": [round(w, 5) for w in (*weights, intercept)], **decision}


def pair_stack_logits(view_logits: np.ndarray, rule: dict) -> np.ndarray:
    """The stacked logit (before the rule's Platt scaling) of (N, 2) calibrated view logits."""
    w = np.asarray(rule["weights"], float)
    return np.asarray(view_logits, float) @ w[:2] + w[2]


def logit(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
    return np.log(probs) - np.log1p(-probs)
