"""The training losses: per frame and per sequence, and the CLIP teacher's distillation terms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..model import MobileNetLSTM
from .items import Item


@dataclass
class Teacher:
    """What the frozen CLIP teacher says about the training crops: their embeddings and the logit of a linear
    classifier fitted on them (the same train split). Pseudo-fakes, made on the fly, have no teacher outputs."""

    weights: np.ndarray  # (512,)
    bias: float

    def targets(
        self, items: list[Item], windows: list[tuple[int, int, int, bool]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frames, 512) embeddings, (frames,) soft labels and (frames,) mask of the frames of a batch, in order."""
        embeddings, mask = [], []
        for index, start, take, pseudo in windows:
            embedded = items[index].embeddings
            if pseudo or embedded is None:
                embeddings.append(np.zeros((take, len(self.weights)), np.float32))
                mask += [False] * take
            else:
                embeddings.append(embedded[start : start + take])
                mask += [True] * take
        embedded = np.concatenate(embeddings).astype(np.float32)
        soft = 1.0 / (1.0 + np.exp(-(embedded @ self.weights + self.bias)))
        return torch.from_numpy(embedded), torch.from_numpy(soft.astype(np.float32)), torch.tensor(mask)


def distillation_loss(
    features: torch.Tensor, frame_logits: torch.Tensor, projection: nn.Module, teacher: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """The student's features regressed onto the teacher's embedding (cosine) and its per-frame logits onto the
    teacher's soft labels, on the frames the teacher saw. `features` and `frame_logits` are flat, frame by frame."""
    embeddings, soft, mask = teacher
    if not mask.any():
        return features.sum() * 0.0
    projected = nn.functional.normalize(projection(features[mask]), dim=1)
    embed_loss = (1 - (projected * embeddings[mask]).sum(dim=1)).mean()
    label_loss = nn.functional.binary_cross_entropy_with_logits(frame_logits[mask], soft[mask])
    return embed_loss + label_loss


def split_features(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(sum(lengths), D) -> (B, max(lengths), D), zero-padded."""
    return nn.utils.rnn.pad_sequence(list(torch.split(features, lengths.tolist())), batch_first=True)


def sequence_loss(
    model: MobileNetLSTM,
    images: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    smoothing: float,
    distill: tuple[float, nn.Module, tuple[torch.Tensor, ...]] | None = None,
) -> torch.Tensor:
    """Frame and clip losses; with `distill` = (weight, projection, teacher targets), plus the teacher's terms."""
    flat = model.encode(images)
    features = split_features(flat, lengths)
    frame_logits, clip_logits = model.sequence_logits(features, lengths)
    target = labels * (1 - smoothing) + 0.5 * smoothing
    mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
    frame_target = target[:, None].expand_as(frame_logits)
    frame_loss = nn.functional.binary_cross_entropy_with_logits(frame_logits[mask], frame_target[mask])
    clip_loss = nn.functional.binary_cross_entropy_with_logits(clip_logits, target)
    loss = frame_loss + clip_loss
    if distill is not None:
        weight, projection, teacher = distill
        loss = loss + weight * distillation_loss(flat, frame_logits[mask], projection, teacher)
    return loss
