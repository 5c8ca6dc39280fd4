"""Classifiers on frozen CLIP embeddings, trained from the embedding cache in seconds:

- `fit_linear`: the baseline of Ojha et al. (CVPR 2023): logistic regression on each crop's embedding; a track
  scores the mean of its frames' logits. Every cross-source table carries it.
- `fit_sequence_head`: the heads of a `clip-lstm` checkpoint (the "accurate" model): a per-frame linear head and
  the LSTM over a face track's embeddings, trained like the MobileNetV3-LSTM (classes and sources balanced,
  frame and clip losses, moving average of the weights, best epoch on validation), with noise and dropout on the
  embeddings in place of pixel augmentation.

Both return `(N, 2)` raw scores per item through a `score(items)` callable: (clip logit, mean frame logit), the
shape `train.calibrate` and the cross-source protocol read.

`python -m detector train-clip --data DIR --out DIR` trains and saves a clip-lstm checkpoint: the heads, a sample of
training embeddings to tell unfamiliar faces (detector/familiarity.py), the decision fitted on validation, and the
ONNX export of the heads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..clip import MEAN, STD
from ..config import CLIP_ARCHITECTURE_NAME, CLIP_BACKBONE, ArchitectureConfig, ModelConfig, PreprocessingConfig
from ..model import MobileNetLSTM
from .train import EpochSampler, Item, blend, cosine_with_warmup, random_window, validation_summary

Scorer = Callable[[list[Item]], np.ndarray]


def frames_of(items: list[Item]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's embedding, its item's label, and the item index it belongs to."""
    embeddings = np.concatenate([item.embeddings for item in items])
    labels = np.concatenate([[item.label] * len(item.embeddings) for item in items])
    owners = np.concatenate([[i] * len(item.embeddings) for i, item in enumerate(items)])
    return embeddings, labels, owners


def mean_by_item(values: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(owners, weights=values, minlength=count) / np.maximum(np.bincount(owners, minlength=count), 1)


# ------------------------------------------------------------------------------------------- linear probe


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


# ----------------------------------------------------------------------------------------- sequence head


@dataclass
class HeadOptions:
    epochs: int = 20
    samples_per_epoch: int = 4096
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    noise: float = 0.02  # Gaussian noise on the unit embeddings, then renormalised
    feature_dropout: float = 0.1
    max_sequence: int = 8
    label_smoothing: float = 0.05
    balance_power: float = 0.75
    ema_decay: float = 0.99
    patience: int = 8
    seed: int = 0


def clip_config(lstm_hidden: int = 128) -> ModelConfig:
    """The config of a clip-lstm checkpoint: CLIP's preprocessing on the usual face crops."""
    architecture = ArchitectureConfig(name=CLIP_ARCHITECTURE_NAME, backbone=CLIP_BACKBONE, lstm_hidden=lstm_hidden)
    preprocessing = PreprocessingConfig(input_size=224, mean=[float(v) for v in MEAN], std=[float(v) for v in STD])
    return ModelConfig(architecture=architecture, preprocessing=preprocessing)


def fit_sequence_head(
    train_items: list[Item], val_items: list[Item], options: HeadOptions | None = None, log=None
) -> tuple[MobileNetLSTM, ModelConfig, Scorer]:
    """Train the heads of a clip-lstm model on cached embeddings; (model, config, score)."""
    options = options or HeadOptions()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    config = clip_config()
    model = MobileNetLSTM(config.architecture)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = -(-options.samples_per_epoch // options.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(options.epochs * steps, steps))
    sampler = EpochSampler(train_items, 0.0, rng, options.balance_power)
    average = copy.deepcopy(model).eval()
    best, best_state, best_epoch, updates = -1.0, None, 0, 0
    for epoch in range(options.epochs):
        model.train()
        picks = sampler.draw(options.samples_per_epoch)
        for step in range(steps):
            chunk = picks[step * options.batch_size : (step + 1) * options.batch_size]
            features, lengths, labels = _batch(train_items, chunk, options, rng)
            loss = _loss(model, features, lengths, labels, options.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            updates += 1
            decay = min(options.ema_decay, (1 + updates) / (10 + updates))
            with torch.no_grad():
                for kept, current in zip(average.state_dict().values(), model.state_dict().values()):
                    kept.mul_(decay).add_(current.detach(), alpha=1 - decay) if kept.dtype.is_floating_point else kept.copy_(current)
        summary = validation_summary(val_items, blend(score_with(average, val_items), config.decision.clip_weight))
        if summary["selection"] > best:
            best, best_epoch, best_state = summary["selection"], epoch + 1, copy.deepcopy(average.state_dict())
        if log:
            log(f"epoch {epoch + 1}: val auc {summary['roc_auc']:.4f} selection {summary['selection']:.4f}")
        if epoch + 1 - best_epoch >= options.patience:
            break
    average.load_state_dict(best_state)
    return average.eval(), config, lambda items: score_with(average, items)


def _batch(items: list[Item], picks, options: HeadOptions, rng: np.random.Generator):
    sequences, labels = [], []
    for index, _ in picks:
        item = items[index]
        start, take = random_window(len(item.embeddings), options.max_sequence, rng)
        frames = item.embeddings[start : start + take] + rng.normal(0, options.noise, (take, item.embeddings.shape[1]))
        frames *= rng.random(frames.shape) >= options.feature_dropout
        frames /= np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-6)
        sequences.append(torch.from_numpy(frames.astype(np.float32)))
        labels.append(item.label)
    lengths = torch.tensor([len(s) for s in sequences])
    return nn.utils.rnn.pad_sequence(sequences, batch_first=True), lengths, torch.tensor(labels, dtype=torch.float32)


def _loss(model: MobileNetLSTM, features, lengths, labels, smoothing: float) -> torch.Tensor:
    frame_logits, clip_logits = model.sequence_logits(features, lengths)
    target = labels * (1 - smoothing) + 0.5 * smoothing
    mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
    frame_loss = nn.functional.binary_cross_entropy_with_logits(frame_logits[mask], target[:, None].expand_as(frame_logits)[mask])
    return frame_loss + nn.functional.binary_cross_entropy_with_logits(clip_logits, target)


@torch.inference_mode()
def score_with(model: MobileNetLSTM, items: list[Item], batch_size: int = 256) -> np.ndarray:
    """Raw (clip logit, mean frame logit) of every item from its embeddings."""
    model.eval()
    out = np.zeros((len(items), 2))
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        lengths = torch.tensor([len(item.embeddings) for item in chunk])
        features = nn.utils.rnn.pad_sequence([torch.from_numpy(item.embeddings.astype(np.float32)) for item in chunk], batch_first=True)
        frame_logits, clip_logits = model.sequence_logits(features, lengths)
        mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
        out[start : start + len(chunk), 0] = clip_logits.numpy()
        out[start : start + len(chunk), 1] = ((frame_logits * mask).sum(1) / lengths).numpy()
    return out


# ------------------------------------------------------------------------------------------------ checkpoint

REFERENCE_SIZE = 2048


def train_clip(data: str, out: str, options: HeadOptions | None = None, log=None) -> Path:
    """Train, calibrate and save a clip-lstm checkpoint from the dataset's train and val splits."""
    import sys
    import time

    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..export import export_onnx
    from ..familiarity import choose_limit, choose_reference
    from .datasets import read_dataset
    from .embeddings import load_crops
    from .train import build_items, calibrate

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.time()
    options = options or HeadOptions()
    samples = read_dataset(data)
    train_samples = [s for s in samples if s.split == "train"]
    val_samples = [s for s in samples if s.split == "val"]
    crops, embedded = load_crops(train_samples + val_samples, True, log=log)
    n = len(train_samples)
    train_items = build_items(train_samples, crops[:n], True, embedded[:n])
    val_items = build_items(val_samples, crops[n:], False, embedded[n:])
    model, config, score = fit_sequence_head(train_items, val_items, options, log)
    calibrate(config, val_items, score(val_items), "balanced")

    reference = choose_reference(np.concatenate([item.embeddings for item in train_items]), REFERENCE_SIZE, options.seed)
    config.architecture.reference_size = len(reference)
    kept = MobileNetLSTM(config.architecture)
    kept.load_state_dict({**model.state_dict(), "reference": torch.from_numpy(reference)}, strict=True)
    config.decision.unfamiliar_above = round(choose_limit(np.concatenate([i.embeddings for i in val_items]), reference), 5)
    config.trained = True
    config.training = {
        "data": str(data),
        "command": "python -m detector train-clip " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train-clip"] else "",
        "encoder": "CLIP ViT-B/16 image tower (openai/clip-vit-base-patch16), frozen, int8 ONNX",
        "options": {k: v for k, v in vars(options).items()},
        "train_samples": len(train_samples),
        "val_samples": len(val_samples),
        "minutes": round((time.time() - started) / 60, 1),
    }
    save_checkpoint(out, kept.eval(), config)
    export_onnx(load_checkpoint(out), out)
    log(f"saved {out}")
    return Path(out)


def register(commands, add_model_options) -> None:
    p = commands.add_parser("train-clip", help="train a clip-lstm checkpoint (the accurate model) on cached CLIP embeddings")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv (train and val splits)")
    p.add_argument("--out", required=True, help="output checkpoint folder")
    defaults = HeadOptions()
    for name in ("epochs", "samples_per_epoch", "batch_size", "patience", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "weight_decay", "noise", "feature_dropout", "balance_power"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    p.set_defaults(run=run_train_clip)


def run_train_clip(args) -> int:
    names = set(HeadOptions.__dataclass_fields__)
    train_clip(args.data, args.out, HeadOptions(**{k: v for k, v in vars(args).items() if k in names}))
    return 0
