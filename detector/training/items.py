"""What the training loop draws from: items (the crops of one image or one video, in time order), the sampler that
balances classes and sources and mixes in pseudo-fakes, and the batches it makes of them."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import PreprocessingConfig
from ..preprocess import crops_to_tensor
from .augment import augment_sequence, cross_blend, self_blend
from .crops import FaceCrops
from .datasets import DatasetError, Sample
from .options import TrainOptions


@dataclass
class Item:
    """One training unit: the crops of one image, or of the frames of one group/video, in time order."""

    crops: np.ndarray
    landmarks: np.ndarray | None
    label: int
    source: str
    method: str
    paths: list[str]
    embeddings: np.ndarray | None = None  # (T, 512) CLIP embeddings of the crops, when the teacher's are loaded


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _clip_name(path: Path) -> str:
    return re.sub(r"(_f)?\d+$", "", path.stem)


def build_items(
    samples: list[Sample], crops: list[FaceCrops | None], group: bool, embeddings: list[np.ndarray | None] | None = None
) -> list[Item]:
    """Group frames of one video (same `group`, label and clip name) into a sequence; everything else is a sequence of
    its own. A manifest group may hold several clips and photos of one repository kept on one side of the split (the
    `modern` source's): its files form one sequence per label and clip name (the file name less a trailing frame
    number, `image_181_3` -> `image_181`, `elon_f2` -> `elon`)."""
    units: dict[tuple, list[tuple[Sample, FaceCrops, np.ndarray | None]]] = defaultdict(list)
    for n, (sample, crop) in enumerate(zip(samples, crops)):
        if crop is None:
            continue
        key = (sample.group_key, sample.label, _clip_name(sample.path)) if group else (str(sample.path),)
        units[key].append((sample, crop, embeddings[n] if embeddings else None))
    items = []
    for members in units.values():
        members.sort(key=lambda m: _natural_key(m[0].path.name))
        labels = {m[0].label for m in members}
        if len(labels) > 1:
            raise DatasetError(f"group {members[0][0].group!r} mixes real and fake files")
        if len(members) == 1:  # most items: keep the cached arrays rather than copies (memory)
            frames, landmarks, embedded = members[0][1].crops, members[0][1].landmarks, members[0][2]
        else:
            frames = np.concatenate([m[1].crops for m in members])
            marks = [m[1].landmarks for m in members]
            landmarks = np.concatenate(marks) if all(m is not None for m in marks) else None
            embedded = np.concatenate([m[2] for m in members]) if embeddings else None
        first = members[0][0]
        paths = [str(m[0].path) for m in members]
        items.append(Item(frames, landmarks, first.label, first.source, first.method, paths, embedded))
    return items


class EpochSampler:
    """Draws the items of an epoch: classes balanced, each (source, label) bucket weighted by its size to the power
    `power` (TrainOptions.balance_power; 1: as often as their size says; 0: every bucket alike). Its default 0.75
    shows small sources more often than their share, but less than the square root did: on ../shared/data/faces (14
    epochs) the square root showed each CIPLab and GAN image 12 to 30 times and they were memorised (train ROC-AUC
    0.95-0.99 against 0.62-0.75 on val); 0.75 shows them 8 to 13 times and gave a better validation ROC-AUC overall
    and after JPEG q40 and 0.5x downscaling (README). A share of the fake class (`pseudo_fakes`) is pseudo-fakes built
    from real items.

    `within_source` weights each source by its size to the power instead, split evenly between its reals and its
    fakes, so that every source holding both classes shows them in the same proportion. Buckets weighted by their
    own size make the look of a source a hint of its label (on ../shared/data/faces at 0.75, without pseudo-fakes:
    a GAN-source face is a fake 85% of the time, an LFW one 61%, a UTKFace one never), and a model learns that hint:
    a single threshold then sits above the reals of the most "fake-looking" sources and misses the fakes of the
    others (docs/cross-source.md, run 6)."""

    def __init__(self, items: list[Item], pseudo_fakes: float, rng: np.random.Generator, power: float,
                 within_source: bool = False):  # fmt: skip
        self.items, self.rng = items, rng
        buckets: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            buckets[(item.source, item.label)].append(i)
        self.buckets = list(buckets.items())
        if within_source:
            per_source: dict[str, int] = defaultdict(int)
            for (source, _), idx in self.buckets:
                per_source[source] += len(idx)
            weights = np.array([per_source[source] ** power / 2 for (source, _), _ in self.buckets], dtype=float)
        else:
            weights = np.array([len(idx) ** power for _, idx in self.buckets], dtype=float)
        is_fake = np.array([label for (_, label), _ in self.buckets]) == 1
        self.reals = [i for i, item in enumerate(items) if item.label == 0]
        real_total = weights[~is_fake].sum()
        fake_total = weights[is_fake].sum()
        share = pseudo_fakes if fake_total > 0 else 1.0
        if not self.reals:
            share = 0.0
        weights[~is_fake] *= 0.5 / max(real_total, 1e-9)
        weights[is_fake] *= 0.5 * (1 - share) / max(fake_total, 1e-9)
        self.pseudo_weight = 0.5 * share
        self.weights = np.append(weights, self.pseudo_weight)
        self.weights /= self.weights.sum()

    def draw(self, n: int) -> list[tuple[int, bool]]:
        picks = self.rng.choice(len(self.weights), size=n, p=self.weights)
        out = []
        for b in picks:
            if b == len(self.buckets):
                out.append((int(self.rng.choice(self.reals)), True))
            else:
                out.append((int(self.rng.choice(self.buckets[b][1])), False))
        return out

    def describe(self) -> str:
        parts = [f"{src}/{'fake' if lab else 'real'} {w:.1%}" for ((src, lab), _), w in zip(self.buckets, self.weights)]
        return ", ".join(parts + [f"pseudo-fake {self.weights[-1]:.1%}"])


def make_batch(
    items: list[Item],
    picks: list[tuple[int, bool]],
    options: TrainOptions,
    prep: PreprocessingConfig,
    rng: np.random.Generator,
    reals: list[int] | None = None,
    windows: list[tuple[int, int, int, bool]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented sequences of the picked items; a pick flagged pseudo becomes a blended fake of that real item
    (with a donor face drawn from `reals` for the cross-blended share; self-blended when no donors are given).
    `windows`, when given, receives (item, first frame, frames, pseudo) of each sequence."""
    sequences, labels = [], []
    for index, pseudo in picks:
        item = items[index]
        start, take = random_window(len(item.crops), options.max_sequence, rng)
        if windows is not None:
            windows.append((index, start, take, pseudo))
        frames = item.crops[start : start + take]
        label = item.label
        if pseudo:
            marks = item.landmarks[start : start + take] if item.landmarks is not None else None
            if reals and options.cross_blend > 0 and rng.random() < options.cross_blend:
                donor = items[int(rng.choice(reals))]
                pick = int(rng.integers(len(donor.crops)))
                donor_marks = donor.landmarks[pick] if donor.landmarks is not None else None
                frames = cross_blend(frames, marks, donor.crops[pick], donor_marks, rng)
            else:
                frames = self_blend(frames, marks, rng)
            label = 1
        sequences.append(augment_sequence(frames, rng, options.augment))
        labels.append(label)
    lengths = torch.tensor([len(s) for s in sequences])
    images = crops_to_tensor(np.concatenate(sequences), prep)
    return images, lengths, torch.tensor(labels, dtype=torch.float32)


def random_window(length: int, max_sequence: int, rng: np.random.Generator) -> tuple[int, int]:
    """(first frame, frames) of a random run of 1 to `max_sequence` consecutive frames of a `length`-frame item."""
    take = int(rng.integers(1, min(length, max_sequence) + 1)) if length > 1 else 1
    return int(rng.integers(0, length - take + 1)), take
