"""From logits to what a user reads: calibrated probabilities, a smoothed timeline, a verdict and a confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .config import DecisionConfig
from .report import VERDICTS  # noqa: F401  (re-exported: decide() returns one of them)


def calibrated(logit: float, temperature: float, bias: float = 0.0) -> float:
    """Temperature-scaled, shifted sigmoid (Platt scaling), numerically safe for large logits."""
    z = logit / temperature + bias
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def clip_logit(clip: float, frame_logits: Sequence[float], clip_weight: float) -> float:
    """The whole-track logit: the LSTM's judgement blended with the mean per-frame judgement."""
    mean_frames = sum(frame_logits) / len(frame_logits)
    return clip_weight * clip + (1.0 - clip_weight) * mean_frames


def moving_average(values: Sequence[float | None], window: int) -> list[float | None]:
    """Centred moving average (the window shrinks at the ends); frames without a score stay without one."""
    half = window // 2
    smoothed: list[float | None] = []
    for i, value in enumerate(values):
        if value is None:
            smoothed.append(None)
            continue
        around = [v for v in values[max(0, i - half) : i + half + 1] if v is not None]
        smoothed.append(sum(around) / len(around))
    return smoothed


def decide(probability: float | None, config: DecisionConfig) -> tuple[str, float | None]:
    """Verdict and confidence for a calibrated fake probability (None means no face was analysed).

    Confidence is the calibrated probability of the label given: p for "fake", 1 - p for "real", and the
    probability of the more likely class for "uncertain".
    """
    if probability is None:
        return "no_face", None
    low, high = config.uncertain_band
    if low < probability < high or (low == high == probability):
        return "uncertain", max(probability, 1.0 - probability)
    if probability >= config.threshold:
        return "fake", probability
    return "real", 1.0 - probability
