"""Metrics for a fake-vs-real classifier (fake is the positive class) and the calibration fitted on validation."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve


def roc_auc(labels: Sequence[int], probs: Sequence[float]) -> float | None:
    labels = np.asarray(labels)
    if labels.min(initial=1) == labels.max(initial=0) or len(labels) == 0:
        return None  # one class only: undefined
    return float(roc_auc_score(labels, probs))


def _bootstrap_aucs(labels: np.ndarray, probs: list[np.ndarray], rounds: int, seed: int) -> list[np.ndarray]:
    """ROC-AUC of each score array over the same stratified resamples (fakes and reals drawn separately)."""
    fakes, reals = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [fakes[rng.integers(0, len(fakes), (rounds, len(fakes)))], reals[rng.integers(0, len(reals), (rounds, len(reals)))]],
        axis=1,
    )
    out = []
    for p in probs:
        # Mann-Whitney: the AUC of each round from the ranks of its fakes among all its scores (ties get mean ranks)
        ranks = rankdata(p[picks], axis=1)[:, : len(fakes)]
        out.append((ranks.sum(axis=1) - len(fakes) * (len(fakes) + 1) / 2) / (len(fakes) * len(reals)))
    return out


def roc_auc_interval(
    labels: Sequence[int], probs: Sequence[float], level: float = 0.95, rounds: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """A percentile bootstrap interval for the ROC-AUC, resampling fakes and reals separately (so every round has
    both classes); None where the AUC is undefined. Shows how far a figure from a few dozen files can be trusted."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    if roc_auc(labels, probs) is None:
        return None
    (aucs,) = _bootstrap_aucs(labels, [probs], rounds, seed)
    low, high = np.quantile(aucs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def paired_auc_difference(
    labels: Sequence[int],
    probs_a: Sequence[float],
    probs_b: Sequence[float],
    level: float = 0.95,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float] | None:
    """ROC-AUC of B minus that of A on the same files, with a paired bootstrap interval (both scored on each
    resample): the way to tell whether one checkpoint beats another or only drew luckier files. None where the
    AUC is undefined."""
    labels = np.asarray(labels, dtype=int)
    a, b = np.asarray(probs_a, dtype=float), np.asarray(probs_b, dtype=float)
    if roc_auc(labels, a) is None:
        return None
    auc_a, auc_b = _bootstrap_aucs(labels, [a, b], rounds, seed)
    low, high = np.quantile(auc_b - auc_a, [(1 - level) / 2, 1 - (1 - level) / 2])
    return roc_auc(labels, b) - roc_auc(labels, a), float(low), float(high)


def paired_mean_auc_difference(
    groups: list[tuple[Sequence[int], Sequence[float], Sequence[float]]], level: float = 0.95, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float] | None:
    """The mean over groups (folds) of ROC-AUC(B) - ROC-AUC(A), with a paired bootstrap interval: each round
    resamples every group's files (fakes and reals apart) and scores A and B on the same resample. None when no
    group has both classes."""
    differences, rounds_diff = [], []
    for n, (labels, a, b) in enumerate(groups):
        labels = np.asarray(labels, dtype=int)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if roc_auc(labels, a) is None:
            continue
        auc_a, auc_b = _bootstrap_aucs(labels, [a, b], rounds, seed + n)
        differences.append(roc_auc(labels, b) - roc_auc(labels, a))
        rounds_diff.append(auc_b - auc_a)
    if not differences:
        return None
    per_round = np.mean(rounds_diff, axis=0)
    low, high = np.quantile(per_round, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(np.mean(differences)), float(low), float(high)


# ------------------------------------------------------------------------------------ what users are told

TOLD = ("fake", "real", "uncertain")  # the answers a face gets (no_face aside)


def told_shares(labels: Sequence[int], told: Sequence[str]) -> dict:
    """What users are told, per class: the share of fakes labelled fake / real / uncertain, of reals labelled
    real / fake / uncertain, and `decided_right`: the mean over the classes present of the share labelled rightly
    (an "uncertain" counts as not right: answering it everywhere helps nobody)."""
    labels, told = np.asarray(labels, dtype=int), np.asarray(told)
    out: dict = {}
    for name, value in (("fakes", 1), ("reals", 0)):
        chosen = told[labels == value]
        out[name] = {answer: float((chosen == answer).mean()) for answer in TOLD} if len(chosen) else None
    out["decided_right"] = decided_right(labels, told)
    return out


def decided_right(labels: np.ndarray, told: np.ndarray) -> float | None:
    """(fakes labelled fake + reals labelled real) / 2, or the one of them a set with one class has."""
    shares = [
        float((told[labels == value] == answer).mean()) for value, answer in ((1, "fake"), (0, "real")) if (labels == value).any()
    ]
    return float(np.mean(shares)) if shares else None


def paired_mean_decided_difference(
    groups: list[tuple[Sequence[int], Sequence[str], Sequence[str]]], level: float = 0.95, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float] | None:
    """The mean over groups (folds) of decided_right(B) - decided_right(A), with a paired bootstrap interval: each
    round resamples every group's files (fakes and reals apart) and scores A and B on the same resample."""
    rng = np.random.default_rng(seed)
    differences, per_round = [], np.zeros(rounds)
    for labels, a, b in groups:
        labels = np.asarray(labels, dtype=int)
        right_a = np.asarray(a) == np.where(labels == 1, "fake", "real")
        right_b = np.asarray(b) == np.where(labels == 1, "fake", "real")
        classes = [np.flatnonzero(labels == value) for value in (1, 0) if (labels == value).any()]
        if not classes:
            continue
        differences.append(np.mean([right_b[c].mean() - right_a[c].mean() for c in classes]))
        delta = np.zeros(rounds)
        for members in classes:
            picks = members[rng.integers(0, len(members), (rounds, len(members)))]
            delta += (right_b[picks].mean(axis=1) - right_a[picks].mean(axis=1)) / len(classes)
        per_round += delta
    if not differences:
        return None
    per_round /= len(differences)
    low, high = np.quantile(per_round, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(np.mean(differences)), float(low), float(high)


def interval_verdict(low: float, high: float) -> str:
    """What a 95% interval of B - A says: `better` or `worse` when it excludes 0, else `no clear difference`."""
    return "better" if low > 0 else "worse" if high < 0 else "no clear difference"


def told(probs: np.ndarray, decision: dict, unfamiliar: np.ndarray | None = None) -> np.ndarray:
    """What `decision` tells users for each calibrated probability: fake, real or uncertain (and uncertain where a
    face is unfamiliar, when `unfamiliar` is given)."""
    probs = np.asarray(probs)
    answers = np.where(labelled_fake(probs, decision), "fake", np.where(labelled_real(probs, decision), "real", "uncertain"))
    if unfamiliar is not None:
        answers = np.where(np.asarray(unfamiliar, dtype=bool), "uncertain", answers)
    return answers.astype(object)


def equal_error_rate(labels: Sequence[int], probs: Sequence[float]) -> float | None:
    if roc_auc(labels, probs) is None:
        return None
    fpr, tpr, _ = roc_curve(labels, probs)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def expected_calibration_error(labels: Sequence[int], probs: Sequence[float], bins: int = 10) -> float:
    """Weighted mean gap between predicted fake probability and observed fake rate over equal-width bins."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.sum() * abs(probs[chosen].mean() - labels[chosen].mean())
    return float(total / max(len(labels), 1))


def binary_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float) -> dict:
    labels = np.asarray(labels, dtype=int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / max(len(labels), 1),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def group_indices(names: Sequence[str]) -> dict[str, list[int]]:
    """{group name: indices of its files}, sorted by name; a missing name is the group "-"."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        groups[name or "-"].append(i)
    return dict(sorted(groups.items()))


def false_positive_rate(labels: Sequence[int], verdicts: Sequence[str]) -> float | None:
    """The share of real files labelled fake (None without real files)."""
    reals = [v for label, v in zip(labels, verdicts) if label == 0]
    return sum(v == "fake" for v in reals) / len(reals) if reals else None


def answers_of(verdicts: Sequence[str]) -> np.ndarray:
    """Verdicts as the answers counted in `told_shares` (a file scored without a face counts as uncertain)."""
    return np.array([v if v in TOLD else "uncertain" for v in verdicts], dtype=object)


def report_metrics(
    labels: Sequence[int],
    probs: Sequence[float],
    threshold: float,
    sources: Sequence[str],
    methods: Sequence[str],
    no_face: Sequence[bool],
    verdicts: Sequence[str] | None = None,
) -> dict:
    """The evaluation report: overall metrics, then accuracy and ROC-AUC per source and per method; with the
    verdicts, also `fpr` (reals labelled fake) and `uncertain_real` (reals left uncertain), overall and per group."""
    result = {"n": len(labels)}
    result.update(binary_metrics(labels, probs, threshold))
    result["roc_auc"] = roc_auc(labels, probs)
    result["eer"] = equal_error_rate(labels, probs)
    result["ece"] = expected_calibration_error(labels, probs)
    result["threshold"] = threshold
    result["no_face_rate"] = float(np.mean(no_face)) if len(no_face) else 0.0
    result["confusion"] = result.pop("confusion")
    if verdicts is not None:
        result["fpr"] = false_positive_rate(labels, verdicts)
        result["uncertain_real"] = false_positive_rate(labels, ["fake" if v == "uncertain" else "" for v in verdicts])
        result.update(told_shares(labels, answers_of(verdicts)))
    for key, names in (("per_source", sources), ("per_method", methods)):
        groups = group_indices(names)
        result[key] = {}
        for name, idx in groups.items():
            members = [labels[i] for i in idx]
            entry = {
                "n": len(idx),
                "accuracy": binary_metrics(members, [probs[i] for i in idx], threshold)["accuracy"],
                "roc_auc": roc_auc(members, [probs[i] for i in idx]),
            }
            if verdicts is not None:
                chosen = [verdicts[i] for i in idx]
                entry["fpr"] = false_positive_rate(members, chosen)
                entry["uncertain_real"] = false_positive_rate(members, ["fake" if v == "uncertain" else "" for v in chosen])
                entry.update(told_shares(members, answers_of(chosen)))
            result[key][name] = entry
    return result


# ---------------------------------------------------------------------------------------------- calibration


def fit_platt(logits: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """Temperature and bias so that sigmoid(logit / T + b) minimises the negative log-likelihood (Platt scaling).

    The bias matters: training balances classes and adds pseudo-fakes, so raw logits are shifted against the
    share of fakes in real data; a temperature alone cannot undo a shift."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(logits, dtype=float).reshape(-1, 1)
    y = np.asarray(labels, dtype=int)
    if y.min() == y.max():
        return 1.0, 0.0
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(x, y)
    slope, bias = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if slope <= 1e-3:  # scores carry no usable ranking: keep them as they are
        return 1.0, 0.0
    return 1.0 / slope, bias


def choose_threshold(labels: Sequence[int], probs: Sequence[float], rule: str = "balanced") -> float:
    """A decision threshold on validation scores.

    `balanced` maximises balanced accuracy (Youden's J): it does not depend on the share of fakes in the
    validation data, which a feed will not share. `accuracy` and `f1` maximise those on validation as it is.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    candidates = np.unique(np.concatenate([probs, [0.5]]))
    best, best_score = 0.5, -1.0
    for t in candidates:
        predicted = probs >= t
        if rule == "balanced":
            tpr = predicted[labels == 1].mean() if (labels == 1).any() else 0.0
            tnr = (~predicted[labels == 0]).mean() if (labels == 0).any() else 0.0
            score = tpr + tnr
        elif rule == "accuracy":
            score = (predicted == labels).mean()
        elif rule == "f1":
            score = binary_metrics(labels, probs, t)["f1"]
        else:
            raise ValueError(f"unknown threshold rule {rule!r}")
        if score > best_score + 1e-12:
            best, best_score = float(t), float(score)
    return best


def choose_uncertain_band(
    labels: Sequence[int], probs: Sequence[float], threshold: float, target_accuracy: float = 0.97, max_share: float = 0.15
) -> list[float]:
    """The narrowest band around the threshold outside which validation decisions reach `target_accuracy`,
    holding at most `max_share` of the validation files. Widths are searched symmetrically in logit space."""
    labels, probs = np.asarray(labels, dtype=int), np.clip(np.asarray(probs, dtype=float), 1e-6, 1 - 1e-6)
    logit = np.log(probs / (1 - probs))
    center = math.log(max(threshold, 1e-6) / max(1 - threshold, 1e-6))
    predicted = probs >= threshold
    chosen = 0.0
    for width in np.linspace(0.0, 3.0, 61):
        inside = np.abs(logit - center) < width
        if inside.mean() > max_share:
            break
        chosen = float(width)
        outside = ~inside
        if outside.any() and (predicted[outside] == labels[outside]).mean() >= target_accuracy:
            break
    low = 1 / (1 + math.exp(-(center - chosen)))
    high = 1 / (1 + math.exp(-(center + chosen)))
    return [math.floor(min(low, threshold) * 1e4) / 1e4, math.ceil(max(high, threshold) * 1e4) / 1e4]


# Most reals of any one source that may be labelled fake on validation: a wrong "fake" on a real person's photo is
# the most harmful answer the product can give.
MAX_FALSE_POSITIVE_RATE = 0.03


def threshold_for_false_positives(
    labels: Sequence[int], probs: Sequence[float], sources: Sequence[str], max_fpr: float = MAX_FALSE_POSITIVE_RATE
) -> float:
    """The lowest threshold at which, for every source, at most `max_fpr` of its reals score at or above it."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    sources = np.asarray(sources)
    threshold = 0.0
    for source in np.unique(sources[labels == 0]):
        reals = np.sort(probs[(labels == 0) & (sources == source)])[::-1]
        allowed = int(math.floor(max_fpr * len(reals) + 1e-9))
        if allowed < len(reals):
            threshold = max(threshold, float(np.nextafter(reals[allowed], 1.0)))
    return min(threshold, 1.0)


def choose_decision(
    logits: Sequence[float],
    labels: Sequence[int],
    sources: Sequence[str],
    rule: str = "balanced",
    max_fpr: float | None = MAX_FALSE_POSITIVE_RATE,
) -> dict:
    """The decision fitted on validation scores: Platt temperature and bias, the threshold of `rule`, the uncertain
    band around it, then the band's top raised where needed so that no source's reals are labelled fake more often
    than `max_fpr` (None: no such limit). A "fake" needs a probability at or above the band's top; what the limit
    takes from "fake" becomes "uncertain", never "real" (raising the threshold instead would call those fakes real)."""
    logits, labels = np.asarray(logits, dtype=float), np.asarray(labels, dtype=int)
    temperature, bias = fit_platt(logits, labels)
    decision = {"temperature": round(temperature, 5), "bias": round(bias, 5)}
    probs = calibrated_probabilities(logits, decision)
    decision["threshold"] = round(min(choose_threshold(labels, probs, rule), 0.9999), 4)
    low, high = choose_uncertain_band(labels, probs, decision["threshold"])
    if max_fpr is not None:
        limit = threshold_for_false_positives(labels, probs, sources, max_fpr)
        high = max(high, math.ceil(min(limit, 0.9999) * 1e4) / 1e4)
    decision["uncertain_band"] = [min(low, decision["threshold"]), max(high, decision["threshold"])]
    return decision


def labelled_fake(probs: np.ndarray, decision: dict) -> np.ndarray:
    """Which calibrated probabilities `decision.decide` labels fake: at or above both the threshold and the band's top."""
    return np.asarray(probs) >= max(decision["threshold"], decision["uncertain_band"][1])


def labelled_real(probs: np.ndarray, decision: dict) -> np.ndarray:
    """Which calibrated probabilities `decision.decide` labels real: below the threshold and not inside the band."""
    probs = np.asarray(probs)
    return (probs < decision["threshold"]) & (probs <= decision["uncertain_band"][0])


def calibrated_probabilities(logits: Sequence[float], decision: dict) -> np.ndarray:
    """sigmoid(logit / temperature + bias) for an array of logits."""
    z = np.asarray(logits, dtype=float) / decision["temperature"] + decision["bias"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
