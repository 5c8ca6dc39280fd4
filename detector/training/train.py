"""Train a MobileNetV3-LSTM checkpoint: `python -m detector train --data PATH --out DIR [options]`.

Crops come from the inference code path (`detector.training.crops`), so training and inference see identical inputs.
Frames sharing a `group` form sequences for the LSTM; single images are sequences of one; a per-frame loss and
a per-sequence loss both train. Sampling balances classes and sources; self-blended pseudo-fakes are mixed in.
The loop: AdamW, cosine schedule with warm-up, early stopping on validation ROC-AUC, best checkpoint kept, fixed
seed, resumable. At the end the temperature, threshold and uncertain band are fitted on validation and written
into the checkpoint's config.
"""

from __future__ import annotations

import argparse
import copy
import csv
import ctypes
import json
import math
import re
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import ArchitectureConfig, ModelConfig, PreprocessingConfig
from ..errors import DetectorError
from ..model import MobileNetLSTM, load_backbone_state
from ..paths import imagenet_backbone_file
from ..preprocess import crops_to_tensor, encode_crops
from ..progress import ProgressLine
from .augment import AugmentConfig, augment_sequence, cross_blend, self_blend
from .crops import CropCache, FaceCrops
from .datasets import DatasetError, Sample, describe, read_dataset
from .metrics import choose_decision, fit_platt, roc_auc


@dataclass
class TrainOptions:
    data: str
    out: str
    epochs: int = 14
    samples_per_epoch: int = 4096
    batch_size: int = 48
    lr: float = 1e-3
    backbone_lr: float = 2e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    patience: int = 6
    seed: int = 0
    input_size: int = 224
    backbone: str = "mobilenet_v3_small"
    backbone_weights: str | None = "shared"
    init_from: str | None = None
    pseudo_fakes: float = 0.5  # share of the fake class drawn as pseudo-fakes blended from real faces
    real_only: bool = False  # train on real faces and pseudo-fakes only (no fake of the data is seen)
    distill: float = 0.0  # weight of the CLIP teacher's terms (its embedding and soft labels; 0: no teacher)
    cross_blend: float = 0.5  # share of those pseudo-fakes blended from another real face rather than from itself
    balance_power: float = 0.75  # a (source, label) bucket of n items is drawn with weight n ** balance_power
    ema_decay: float = 0.995  # validation and checkpoints use an exponential moving average of the weights (0: off)
    tta_flip: bool = True  # score validation (and later inference) on each crop and its mirror image
    max_sequence: int = 8
    label_smoothing: float = 0.05
    threshold_rule: str = "balanced"
    train_split: str = "train"
    val_split: str = "val"
    cache_dir: str | None = None
    crop_workers: int = 2
    max_minutes: float | None = None
    resume: bool = False
    device: str | None = None
    threads: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


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


# ---------------------------------------------------------------------------------------------- data


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
    from real items."""

    def __init__(self, items: list[Item], pseudo_fakes: float, rng: np.random.Generator, power: float):
        self.items, self.rng = items, rng
        buckets: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            buckets[(item.source, item.label)].append(i)
        self.buckets = list(buckets.items())
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


# ---------------------------------------------------------------------------------------------- model set-up


def backbone_state(source: str, backbone: str) -> tuple[dict, list[float], list[float]]:
    """A torchvision-layout state_dict and the input normalisation it expects."""
    if source == "imagenet":
        import torchvision

        enum = {"mobilenet_v3_small": "MobileNet_V3_Small_Weights", "mobilenet_v3_large": "MobileNet_V3_Large_Weights"}
        weights = getattr(torchvision.models, enum[backbone]).IMAGENET1K_V1
        state = weights.get_state_dict(progress=True, check_hash=True)
        return state, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    path = imagenet_backbone_file() if source == "shared" else Path(source)
    if not path.is_file():
        raise DetectorError(f"backbone weights {path} not found")
    # the shared TF-slim conversion expects inputs scaled to [-1, 1] (see shared/models/README.md)
    return load_file(str(path)), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@torch.no_grad()
def reestimate_batchnorm(model: MobileNetLSTM, batches: list[torch.Tensor]) -> None:
    """Give BatchNorm layers real statistics without changing what the pretrained network computes.

    The shared backbone has BatchNorm folded into the convolutions (running mean 0, variance 1, so each BN is
    an identity plus bias). Training mode would normalise by batch statistics and change the function. So we
    measure each BN input's mean and variance on real crops and set the layer to normalise by them and scale
    back: identical output in eval mode, nearly identical in training mode, and meaningful statistics.
    """
    layers = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(m): [0.0, 0.0, 0] for m in layers}

    def hook(module, inputs):
        x = inputs[0].double()
        acc = sums[id(module)]
        acc[0] = acc[0] + x.sum(dim=(0, 2, 3))
        acc[1] = acc[1] + (x * x).sum(dim=(0, 2, 3))
        acc[2] += x.numel() // x.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    model.eval()
    for batch in batches:
        model.encode(batch)
    for h in handles:
        h.remove()
    for m in layers:
        total, squares, count = sums[id(m)]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(1e-6)
        # y = (x - mean) / sqrt(var + eps) * w' + b' must equal the old y = (x - rm) / sqrt(rv + eps) * w + b
        old_scale = m.weight.double() / torch.sqrt(m.running_var.double() + m.eps)
        old_shift = m.bias.double() - m.running_mean.double() * old_scale
        new_std = torch.sqrt(var + m.eps)
        m.running_mean.copy_(mean.float())
        m.running_var.copy_(var.float())
        m.weight.copy_((old_scale * new_std).float())
        m.bias.copy_((old_shift + mean * old_scale).float())


def build_model(options: TrainOptions, items: list[Item], rng: np.random.Generator) -> tuple[MobileNetLSTM, ModelConfig]:
    if options.init_from:
        checkpoint = load_checkpoint(options.init_from)
        config = checkpoint.config
        print(f"fine-tuning from {checkpoint.id} ({checkpoint.revision})", file=sys.stderr)
        return checkpoint.model.train(), config
    arch = ArchitectureConfig(backbone=options.backbone)
    prep = PreprocessingConfig(input_size=options.input_size, tta_flip=options.tta_flip)
    model = MobileNetLSTM(arch)
    if options.backbone_weights and options.backbone_weights != "none":
        state, mean, std = backbone_state(options.backbone_weights, options.backbone)
        load_backbone_state(model, state)
        prep.mean, prep.std = mean, std
        sample = [items[int(i)].crops[0] for i in rng.choice(len(items), size=min(256, len(items)), replace=False)]
        batches = [crops_to_tensor(np.stack(sample[i : i + 64]), prep) for i in range(0, len(sample), 64)]
        reestimate_batchnorm(model, batches)
    return model, ModelConfig(architecture=arch, preprocessing=prep)


class WeightAverage:
    """An exponential moving average of a model's weights and buffers: smoother, better-generalising weights than
    the last step's, which matters with small, noisy sources."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for averaged, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if averaged.dtype.is_floating_point:
                averaged.mul_(decay).add_(current.detach(), alpha=1 - decay)
            else:
                averaged.copy_(current)


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ---------------------------------------------------------------------------------------------- resume state


def save_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, meta: dict, average=None) -> None:
    """Resume state without pickle: tensors in safetensors, everything else in JSON."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in average.model.state_dict().items()})
        meta = {**meta, "ema_steps": average.steps}
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = value.detach().reshape(-1).contiguous() if value.dim() == 0 else value.contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "state.safetensors"))
    meta = {**meta, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}
    (path / "state.json").write_text(json.dumps(meta, indent=1, default=str))


def load_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, average=None) -> dict:
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if average is not None:
        ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        average.model.load_state_dict(ema or model.state_dict(), strict=True)
        average.steps = meta.get("ema_steps", 0)
    state: dict[int, dict] = defaultdict(dict)
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state[int(pid)][name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": dict(state), "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta


# ---------------------------------------------------------------------------------------------- the loop


def keep_freed_memory() -> bool:
    """Ask glibc to keep large freed blocks instead of handing them back to the kernel.

    By default every activation tensor of a training step above the mmap threshold is mapped fresh and unmapped
    when freed, so the next step faults all of it in again (zeroed pages, system time). Keeping the blocks costs
    resident memory the next step reuses anyway: a MobileNetV3-Small step at batch 48 on 2 cores went from 0.85 to
    0.78 s, its minor page faults down tenfold. False where the C library is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def train(options: TrainOptions, samples: list[Sample] | None = None) -> Path:
    """Train on `options.data` (or on `samples`, e.g. one fold of the cross-source protocol); the checkpoint folder."""
    started = time.time()
    keep_freed_memory()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    samples = samples if samples is not None else read_dataset(options.data)
    train_samples = [s for s in samples if s.split == options.train_split]
    val_samples = [s for s in samples if s.split == options.val_split]
    if not train_samples or not val_samples:
        raise DatasetError(f"{options.data}: need both a {options.train_split!r} and a {options.val_split!r} split")
    print(f"data: {describe(train_samples + val_samples)}", file=sys.stderr)

    base_prep = (
        load_checkpoint(options.init_from).config.preprocessing
        if options.init_from
        else PreprocessingConfig(input_size=options.input_size)
    )
    cache = CropCache(base_prep, options.cache_dir)
    crops = cache.load(train_samples + val_samples, workers=options.crop_workers)
    print(f"face crops: {cache.hits} from cache, {cache.misses} computed ({cache.dir})", file=sys.stderr)
    embedded = None
    if options.distill > 0:
        from ..clip import ClipEncoder
        from .embeddings import EmbeddingCache

        store = EmbeddingCache(cache, ClipEncoder.load())
        embedded = store.load(train_samples + val_samples, crops)
        print(f"CLIP embeddings: {store.hits} from cache, {store.misses} computed ({store.dir})", file=sys.stderr)
    train_items = build_items(
        train_samples, crops[: len(train_samples)], True, embedded[: len(train_samples)] if embedded else None
    )
    val_items = build_items(val_samples, crops[len(train_samples) :], False, embedded[len(train_samples) :] if embedded else None)
    teacher = projection = None
    if options.distill > 0:
        from .cliptrain import fit_linear

        _, fitted = fit_linear(train_items, val_items)
        teacher = Teacher(np.asarray(fitted["weights"], dtype=np.float32), fitted["bias"])
        print(f"teacher: CLIP + logistic regression (C={fitted['C']}), distillation weight {options.distill}", file=sys.stderr)
    if options.real_only:
        train_items = [item for item in train_items if item.label == 0]
        print(f"real faces only: {len(train_items)} items; every fake is a pseudo-fake", file=sys.stderr)

    model, config = build_model(options, train_items, rng)
    prep = config.preprocessing
    model = model.to(device).to(memory_format=torch.channels_last)
    backbone_params = list(model.features.parameters())
    backbone_ids = {id(p) for p in backbone_params}
    head_params = [p for p in model.parameters() if id(p) not in backbone_ids]
    if teacher is not None:  # maps the student's features onto the teacher's embedding; not part of the checkpoint
        projection = nn.Linear(config.architecture.feature_dim, len(teacher.weights)).to(device)
        head_params += list(projection.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": backbone_params, "lr": options.backbone_lr}, {"params": head_params, "lr": options.lr}],
        weight_decay=options.weight_decay,
    )
    steps_per_epoch = math.ceil(options.samples_per_epoch / options.batch_size)
    schedule = cosine_with_warmup(options.epochs * steps_per_epoch, int(options.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    sampler = EpochSampler(train_items, options.pseudo_fakes, rng, options.balance_power)
    average = WeightAverage(model, options.ema_decay) if options.ema_decay > 0 else None
    print(f"sampling: {sampler.describe()}", file=sys.stderr)

    state_dir = out / "resume"
    state_dir.mkdir(exist_ok=True)
    best, best_epoch, start_epoch, log_rows = -1.0, -1, 0, []
    if options.resume and (state_dir / "state.json").is_file():
        meta = load_state(state_dir, model, optimizer, scheduler, average)
        best, best_epoch, start_epoch, log_rows = meta["best"], meta["best_epoch"], meta["epoch"] + 1, meta["log"]
        sampler.rng.bit_generator.state = meta["numpy_rng"]
        print(f"resumed after epoch {meta['epoch']} (best selection {best:.4f} at epoch {best_epoch})", file=sys.stderr)

    for epoch in range(start_epoch, options.epochs):
        epoch_started = time.time()
        model.train()
        picks = sampler.draw(options.samples_per_epoch)
        losses = []
        bar = ProgressLine(f"epoch {epoch + 1}/{options.epochs}", steps_per_epoch, "batch")
        for step in range(steps_per_epoch):
            bar.update()
            chunk = picks[step * options.batch_size : (step + 1) * options.batch_size]
            windows: list[tuple[int, int, int, bool]] = []
            images, lengths, labels = make_batch(train_items, chunk, options, prep, sampler.rng, sampler.reals, windows)
            distill = None
            if teacher is not None:
                targets = tuple(t.to(device) for t in teacher.targets(train_items, windows))
                distill = (options.distill, projection, targets)
            loss = sequence_loss(model, images.to(device), lengths, labels.to(device), options.label_smoothing, distill)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(model)
            losses.append(loss.item())
        bar.close()
        evaluated = average.model if average is not None else model
        raw = score_items(evaluated, val_items, prep)
        summary = validation_summary(val_items, blend(raw, config.decision.clip_weight))
        row = {
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(losses)), 5),
            "val_roc_auc": round(summary["roc_auc"], 5),
            "selection": round(summary["selection"], 5),
            **{f"val_auc_{k}": (round(v, 4) if v is not None else "") for k, v in summary["per_source"].items()},
            "lr": round(scheduler.get_last_lr()[1], 7),
            "seconds": round(time.time() - epoch_started, 1),
        }
        log_rows.append(row)
        improved = summary["selection"] > best
        if improved:
            best, best_epoch = summary["selection"], epoch + 1
            save_checkpoint(out / "best", evaluated, config)
        print(
            f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val auc {row['val_roc_auc']:.4f} selection {row['selection']:.4f} "
            f"per source {json.dumps({k: v for k, v in summary['per_source'].items() if v is not None})}"
            f"{' *' if improved else ''} ({row['seconds']:.0f} s)",
            file=sys.stderr,
        )
        _write_log(out / "training_log.csv", log_rows)
        meta = {
            "epoch": epoch,
            "best": best,
            "best_epoch": best_epoch,
            "log": log_rows,
            "numpy_rng": sampler.rng.bit_generator.state,
        }
        save_state(state_dir, model, optimizer, scheduler, meta, average)
        if epoch + 1 - best_epoch >= options.patience:
            print(f"early stop: no better validation selection score for {options.patience} epochs", file=sys.stderr)
            break
        if options.max_minutes and (time.time() - started) / 60 > options.max_minutes:
            print(f"time limit of {options.max_minutes} min reached", file=sys.stderr)
            break

    final = load_checkpoint(out / "best")
    model, config = final.model.to(device), final.config
    raw = score_items(model, val_items, prep)
    calibrate(config, val_items, raw, options.threshold_rule)
    config.trained = True
    config.training = {
        "data": str(options.data),
        "command": "python -m detector train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else "",
        "options": {k: v for k, v in asdict(options).items() if k not in ("data", "out")},
        "train_samples": len(train_samples),
        "val_samples": len(val_samples),
        "best_epoch": best_epoch,
        "epochs_run": len(log_rows),
        "minutes": round((time.time() - started) / 60, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    save_checkpoint(out, model.cpu(), config)
    print(f"saved {out} (best epoch {best_epoch}, {config.training['minutes']} min)", file=sys.stderr)
    return out


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


def _write_log(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------- CLI


# the augmentations --augment NAME=P sets: the probability fields of AugmentConfig, in their order
AUGMENT_PROBABILITIES = tuple(f.name for f in fields(AugmentConfig) if f.type == "float")


def set_augment_probabilities(config: AugmentConfig, settings: list[str]) -> AugmentConfig:
    """Apply `NAME=P` settings (from `--augment`) to `config`; a typed error names what is wrong."""
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in AUGMENT_PROBABILITIES:
            raise DetectorError(f"--augment {setting}: NAME is one of {', '.join(AUGMENT_PROBABILITIES)}")
        try:
            probability = float(value)
        except ValueError:
            probability = -1.0
        if not 0.0 <= probability <= 1.0:
            raise DetectorError(f"--augment {setting}: P must be a probability between 0 and 1")
        setattr(config, name, probability)
    return config


def register(commands, add_model_options) -> None:
    p = commands.add_parser("train", help="train a checkpoint on a labelled dataset")
    defaults = TrainOptions(data="", out="")
    p.add_argument("--data", required=True, help="dataset folder: manifest.csv, real/ + fake/, or Train|Validation|Test")
    p.add_argument("--out", required=True, help="output checkpoint folder")
    for name in ("epochs", "samples_per_epoch", "batch_size", "patience", "seed", "input_size", "max_sequence", "crop_workers"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in (
        "lr",
        "backbone_lr",
        "weight_decay",
        "warmup_epochs",
        "pseudo_fakes",
        "cross_blend",
        "balance_power",
        "label_smoothing",
        "ema_decay",
    ):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this time")
    p.add_argument("--distill", type=float, default=defaults.distill,
                   help="weight of the CLIP teacher's terms (its embedding and soft labels; needs `clip-fetch`); 0: none")  # fmt: skip
    p.add_argument("--real-only", action="store_true", help="train on real faces and pseudo-fakes only")
    p.add_argument("--backbone", choices=["mobilenet_v3_small", "mobilenet_v3_large"], default=defaults.backbone)
    p.add_argument("--backbone-weights", default="shared",
                   help="'shared' (the ImageNet MobileNetV3-Small in $DEEPFAKE_SHARED_DIR/models), 'imagenet' "
                        "(torchvision's download), a torchvision-format .safetensors file, or 'none'")  # fmt: skip
    p.add_argument("--init-from", default=None, help="fine-tune an existing checkpoint: 'default', a folder or a Hub id")
    p.add_argument("--threshold-rule", choices=["balanced", "accuracy", "f1"], default=defaults.threshold_rule)
    p.add_argument("--train-split", default=defaults.train_split)
    p.add_argument("--val-split", default=defaults.val_split)
    p.add_argument(
        "--cache-dir", default=None, help="face crop cache (default: $DEEPFAKE_CACHE_DIR or ~/.cache/deepfake-checker)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/resume")
    p.add_argument("--no-augment", action="store_true", help="train on the crops as they are (for debugging)")
    p.add_argument(
        "--augment", action="append", default=[], metavar="NAME=P",
        help=f"probability of one augmentation ({', '.join(AUGMENT_PROBABILITIES)}), e.g. --augment jpeg=0.7; repeatable",
    )  # fmt: skip
    p.add_argument("--no-tta-flip", dest="tta_flip", action="store_false", help="score crops without their mirror images")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    names = {f for f in TrainOptions.__dataclass_fields__ if f != "augment"}
    options = TrainOptions(**{k: v for k, v in vars(args).items() if k in names})
    for name in ("pseudo_fakes", "cross_blend"):
        if not 0.0 <= getattr(options, name) <= 1.0:
            raise DetectorError(f"--{name.replace('_', '-')} must be a share between 0 and 1")
    if args.no_augment:
        options.augment = AugmentConfig.off()
    set_augment_probabilities(options.augment, args.augment)
    train(options)
    return 0
