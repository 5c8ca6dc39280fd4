"""Scoring items on validation, the selection score the loop keeps the best epoch by, and the calibration (temperature,
threshold, uncertain band) fitted on validation at the end."""

from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig, PreprocessingConfig
from ..model import MobileNetLSTM
from ..preprocess import encode_crops
from .items import Item
from .losses import split_features
from .metrics import choose_decision, fit_platt, roc_auc


@torch.inference_mode()
def score_items(model: MobileNetLSTM, items: list[Item], prep: PreprocessingConfig, batch_size: int = 128) -> np.ndarray:
    """Raw (clip logit, mean frame logit) of every item, the way inference scores a track."""
    model.eval()
    out = np.zeros((len(items), 2))
    order = list(range(len(items)))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        lengths = torch.tensor([len(items[i].crops) for i in chunk])
        crops = np.concatenate([items[i].crops for i in chunk])
        encoded = encode_crops(
            lambda a: model.encode(torch.from_numpy(a).contiguous(memory_format=torch.channels_last)).numpy(), crops, prep
        )
        features = split_features(torch.from_numpy(encoded), lengths)
        frame_logits, clip_logits = model.sequence_logits(features, lengths)
        mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
        mean_frames = (frame_logits * mask).sum(1) / lengths
        out[chunk, 0] = clip_logits.numpy()
        out[chunk, 1] = mean_frames.numpy()
    return out


def blend(raw: np.ndarray, clip_weight: float) -> np.ndarray:
    return clip_weight * raw[:, 0] + (1 - clip_weight) * raw[:, 1]


def validation_summary(items: list[Item], logits: np.ndarray) -> dict:
    labels = [item.label for item in items]
    result = {"roc_auc": roc_auc(labels, logits)}
    per_source = {}
    for source in sorted({item.source for item in items}):
        idx = [i for i, item in enumerate(items) if item.source == source]
        per_source[source] = roc_auc([labels[i] for i in idx], logits[idx])
    result["per_source"] = per_source
    known = [v for v in per_source.values() if v is not None]
    # model selection: overall ROC-AUC and the mean over sources count equally, so a small hard source matters
    result["selection"] = 0.5 * (result["roc_auc"] or 0) + 0.5 * (float(np.mean(known)) if known else 0)
    return result


def calibrate(config: ModelConfig, items: list[Item], raw: np.ndarray, rule: str) -> None:
    """Fit the temperatures, the threshold and the uncertain band on validation scores; write them to config.
    The uncertain band's top is raised where needed so that no source's reals are labelled fake more often than
    `metrics.MAX_FALSE_POSITIVE_RATE` (see `metrics.choose_decision`)."""
    labels = np.array([item.label for item in items])
    decision = config.decision
    chosen = choose_decision(blend(raw, decision.clip_weight), labels, [item.source for item in items], rule)
    decision.temperature, decision.bias = chosen["temperature"], chosen["bias"]
    decision.threshold, decision.uncertain_band = chosen["threshold"], chosen["uncertain_band"]
    frame_temperature, frame_bias = fit_platt(raw[:, 1], labels)
    decision.frame_temperature, decision.frame_bias = round(frame_temperature, 5), round(frame_bias, 5)
