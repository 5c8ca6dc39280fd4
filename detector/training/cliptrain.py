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

import argparse
import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..clip import EMBEDDING_DIM, MEAN, STD, deep_columns
from ..config import (
    CLIP_ARCHITECTURE_NAME,
    CLIP_BACKBONE,
    PAIR_RULES,
    ArchitectureConfig,
    ModelConfig,
    PairConfig,
    PreprocessingConfig,
)
from ..model import MobileNetLSTM
from .items import EpochSampler, Item, random_window
from .loopstate import cosine_with_warmup
from .probe import Scorer
from .validation import blend, validation_summary


def with_layers(items: list[Item], layers) -> list[Item]:
    """Items whose embeddings keep the unit embedding and the class tokens of `layers` only (from the deep cache's
    full rows); with no layers, the unit embedding alone."""
    columns = deep_columns(list(layers))
    return [replace(item, embeddings=item.embeddings[:, columns]) for item in items]


def standardized(train: list[Item], val: list[Item]):
    """Train and val items with every feature standardised by the training frames' mean and spread, and the function
    that does the same to other items."""
    frames = np.concatenate([item.embeddings for item in train])
    mean, std = frames.mean(axis=0), frames.std(axis=0) + 1e-6

    def scale(items: list[Item]) -> list[Item]:
        return [replace(item, embeddings=((item.embeddings - mean) / std).astype(np.float32)) for item in items]

    return scale(train), scale(val), scale


# ------------------------------------------------------------------------------------------- linear probe


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
    balance_within_source: bool = False  # every source shows its reals and fakes alike (items.EpochSampler)
    ema_decay: float = 0.99
    patience: int = 8
    seed: int = 0
    # several depths of the tower: the blocks whose class token the heads read, and the projection they share
    clip_layers: tuple[int, ...] = ()
    projection_dim: int = 256


def clip_config(lstm_hidden: int = 128, clip_layers=(), projection_dim: int = 256) -> ModelConfig:
    """The config of a clip-lstm checkpoint: CLIP's preprocessing on the usual face crops."""
    architecture = ArchitectureConfig(
        name=CLIP_ARCHITECTURE_NAME,
        backbone=CLIP_BACKBONE,
        lstm_hidden=lstm_hidden,
        clip_layers=list(clip_layers),
        projection_dim=projection_dim if clip_layers else 0,
    )
    preprocessing = PreprocessingConfig(input_size=224, mean=[float(v) for v in MEAN], std=[float(v) for v in STD])
    return ModelConfig(architecture=architecture, preprocessing=preprocessing)


def fit_sequence_head(
    train_items: list[Item], val_items: list[Item], options: HeadOptions | None = None, log=None
) -> tuple[MobileNetLSTM, ModelConfig, Scorer]:
    """Train the heads of a clip-lstm model on cached embeddings; (model, config, score)."""
    options = options or HeadOptions()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    config = clip_config(clip_layers=options.clip_layers, projection_dim=options.projection_dim)
    model = MobileNetLSTM(config.architecture)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = -(-options.samples_per_epoch // options.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(options.epochs * steps, steps))
    sampler = EpochSampler(train_items, 0.0, rng, options.balance_power, options.balance_within_source)
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
                    kept.mul_(decay).add_(current.detach(), alpha=1 - decay) if kept.dtype.is_floating_point else kept.copy_(
                        current
                    )
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
        unit = frames[:, :EMBEDDING_DIM]  # the unit embedding stays on the sphere; the class tokens are normalised by the model
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-6)
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
        features = nn.utils.rnn.pad_sequence(
            [torch.from_numpy(item.embeddings.astype(np.float32)) for item in chunk], batch_first=True
        )
        frame_logits, clip_logits = model.sequence_logits(features, lengths)
        mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
        out[start : start + len(chunk), 0] = clip_logits.numpy()
        out[start : start + len(chunk), 1] = ((frame_logits * mask).sum(1) / lengths).numpy()
    return out


# ------------------------------------------------------------------------------------------------ checkpoint

REFERENCE_SIZE = 2048


def train_clip(
    data: str,
    out: str,
    options: HeadOptions | None = None,
    log=None,
    rule_from: str | None = None,
    rule_recipe: str = "clip-deep-lstm",
    familiarity_gate: bool = True,
    pair_rule: str = "agree",
    pair_with: str = "default",
    jpeg_copies: bool = False,
    probe: bool = False,
) -> Path:
    """Train, calibrate and save a clip-lstm checkpoint from the dataset's train and val splits. With `rule_from` (a
    crossval --out folder holding `rule_recipe`), the verdict's decision is the out-of-source rule fitted on every
    fold's held-out scores, not the one fitted on val. Without `familiarity_gate`, faces unlike the training faces
    are not forced to "uncertain" (the sample of training embeddings is kept all the same). With `jpeg_copies`, the
    heads also train on every training file re-encoded as JPEG (training/embeddings.py `compressed_embeddings`). With
    `probe`, the checkpoint also holds a linear probe fitted on the training files (not their JPEG copies), whose
    agreement a "fake" needs (training/probe.py `fit_probe`)."""
    import sys
    import time

    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..familiarity import choose_limit, choose_reference
    from .datasets import read_dataset
    from .embeddings import compressed_embeddings, load_crops
    from .export import export_onnx
    from .items import build_items
    from .probe import fit_probe
    from .validation import calibrate

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.time()
    options = options or HeadOptions()
    samples = read_dataset(data)
    train_samples = [s for s in samples if s.split == "train"]
    val_samples = [s for s in samples if s.split == "val"]
    crops, embedded = load_crops(train_samples + val_samples, True, log=log, deep=True)
    n = len(train_samples)
    train_items = with_layers(build_items(train_samples, crops[:n], True, embedded[:n]), options.clip_layers)
    val_items = with_layers(build_items(val_samples, crops[n:], False, embedded[n:]), options.clip_layers)
    probe_vector, probe_cut, _ = fit_probe(train_items, val_items) if probe else (None, None, None)
    if jpeg_copies:
        if options.clip_layers:
            raise ValueError("JPEG copies are embedded without the class tokens of other blocks: use no --clip-layers")
        copies = compressed_embeddings(train_samples, crops[:n], log=log)
        train_items = train_items + build_items(train_samples, crops[:n], True, copies)
    model, config, score = fit_sequence_head(train_items, val_items, options, log)
    calibrate(config, val_items, score(val_items), "balanced")
    if rule_from:  # the verdict's rule from what the recipe told users on sources it never saw (training/rule.py)
        from .foldscores import out_of_source_decision

        chosen = out_of_source_decision(Path(rule_from), rule_recipe)
        decision = config.decision
        decision.temperature, decision.bias = chosen["temperature"], chosen["bias"]
        decision.threshold, decision.uncertain_band = chosen["threshold"], chosen["uncertain_band"]

    reference = choose_reference(
        np.concatenate([item.embeddings[:, :EMBEDDING_DIM] for item in train_items]), REFERENCE_SIZE, options.seed
    )
    config.architecture.reference_size = len(reference)
    kept_arrays = {"reference": torch.from_numpy(reference)}
    if probe_vector is not None:
        config.architecture.probe, config.decision.probe_fake_above = True, probe_cut
        kept_arrays["probe"] = torch.from_numpy(probe_vector)
    kept = MobileNetLSTM(config.architecture)
    kept.load_state_dict({**model.state_dict(), **kept_arrays}, strict=True)
    val_embeddings = np.concatenate([item.embeddings[:, :EMBEDDING_DIM] for item in val_items])
    config.decision.unfamiliar_above = round(choose_limit(val_embeddings, reference), 5) if familiarity_gate else None
    config.pair = pair_config(pair_rule, pair_with, val_items, score(val_items), config, log)
    config.trained = True
    config.training = _provenance(data, options, rule_from, rule_recipe, jpeg_copies, probe, train_samples, val_samples, started)
    save_checkpoint(out, kept.eval(), config)
    export_onnx(load_checkpoint(out), out)
    log(f"saved {out}")
    return Path(out)


def _provenance(data, options, rule_from, rule_recipe, jpeg_copies, probe, train_samples, val_samples, started) -> dict:
    """What `train_clip` writes into config.training: the data, the command, the options, how it decides."""
    import sys
    import time

    return {
        "data": str(data),
        "command": "python -m detector train-clip " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train-clip"] else "",
        "encoder": "CLIP ViT-B/16 image tower (openai/clip-vit-base-patch16), frozen, int8 ONNX",
        "options": {k: v for k, v in vars(options).items()},
        "decision": f"out-of-source rule of {rule_recipe} in {rule_from}" if rule_from else "fitted on val",
        "train_samples": len(train_samples),
        "jpeg_copies": "every training file also re-encoded as JPEG at quality 30-90" if jpeg_copies else None,
        "probe": "logistic regression on the training files' unit embeddings, C chosen on val" if probe else None,
        "val_samples": len(val_samples),
        "minutes": round((time.time() - started) / 60, 1),
    }


def pair_config(rule: str, fast_name: str, val_items: list[Item], raw: np.ndarray, config: ModelConfig, log) -> PairConfig:
    """How the checkpoint decides beside the fast view `fast_name`; with `stack`, the stacking fitted on the val items:
    the fast view scores them (PyTorch), both views' calibrated logits are stacked (training/rule.py)."""
    from ..checkpoint import load_checkpoint
    from .metrics import calibrated_probabilities
    from .rule import fit_pair_stack, logit
    from .validation import score_items

    if rule != "stack":
        return PairConfig(rule=rule)
    fast = load_checkpoint(fast_name)
    fast_decision = fast.config.decision
    fast_raw = score_items(fast.model, val_items, fast.config.preprocessing)
    views = [
        calibrated_probabilities(blend(fast_raw, fast_decision.clip_weight), vars(fast_decision)),
        calibrated_probabilities(blend(raw, config.decision.clip_weight), vars(config.decision)),
    ]
    labels = np.array([item.label for item in val_items])
    stack = fit_pair_stack(logit(np.stack(views, axis=1)), labels, np.array([item.source for item in val_items]))
    log(f"stacked with {fast_name}@{fast.revision}: weights {stack['weights']} band {stack['uncertain_band']}")
    return PairConfig(
        rule="stack",
        fast_revision=fast.revision,
        weights=stack["weights"],
        temperature=stack["temperature"],
        bias=stack["bias"],
        threshold=stack["threshold"],
        uncertain_band=stack["uncertain_band"],
    )


def register(commands, add_model_options) -> None:
    p = commands.add_parser("train-clip", help="train a clip-lstm checkpoint (the accurate model) on cached CLIP embeddings")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv (train and val splits)")
    p.add_argument("--out", required=True, help="output checkpoint folder")
    defaults = HeadOptions()
    for name in ("epochs", "samples_per_epoch", "batch_size", "patience", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "weight_decay", "noise", "feature_dropout", "balance_power"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    p.add_argument("--balance-within-source", action="store_true",
                   help="show every source's reals and fakes alike, so a source's look is no hint of the label")  # fmt: skip
    p.add_argument("--clip-layers", type=_blocks, default=defaults.clip_layers,
                   help="comma-separated CLIP blocks (0-11) whose class token the heads read beside the embedding")  # fmt: skip
    p.add_argument("--projection-dim", type=int, default=defaults.projection_dim)
    p.add_argument("--rule-from", default=None, metavar="CROSSVAL_DIR",
                   help="fit the verdict's rule on the out-of-source scores of a crossval --out folder (training/rule.py)")  # fmt: skip
    p.add_argument("--rule-recipe", default="clip-deep-lstm", help="the recipe of that folder whose scores fit the rule")
    p.add_argument("--no-familiarity-gate", dest="familiarity_gate", action="store_false",
                   help="do not answer uncertain for faces unlike the training faces")  # fmt: skip
    p.add_argument("--pair-rule", choices=PAIR_RULES, default="agree",
                   help="how a pair with the fast view decides (detector/ensemble.py); stack: fitted on val")  # fmt: skip
    p.add_argument("--pair-with", default="default", help="the fast view a stacked pair is fitted with")
    p.add_argument("--jpeg-copies", action="store_true",
                   help="also train on every training file re-encoded as JPEG at quality 30-90 (robustness to platforms)")  # fmt: skip
    p.add_argument("--probe", action="store_true",
                   help="also keep a linear probe on the embedding whose agreement a \"fake\" needs (training/probe.py)")  # fmt: skip
    p.set_defaults(run=run_train_clip)


def _blocks(text: str) -> tuple[int, ...]:
    from ..config import CLIP_BLOCKS

    try:
        blocks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        blocks = (-1,)
    if not all(0 <= b < CLIP_BLOCKS for b in blocks):
        raise argparse.ArgumentTypeError(f"blocks are numbers from 0 to {CLIP_BLOCKS - 1}, comma-separated")
    return blocks


def run_train_clip(args) -> int:
    names = set(HeadOptions.__dataclass_fields__)
    options = HeadOptions(**{k: v for k, v in vars(args).items() if k in names})
    train_clip(
        args.data,
        args.out,
        options,
        rule_from=args.rule_from,
        rule_recipe=args.rule_recipe,
        familiarity_gate=args.familiarity_gate,
        pair_rule=args.pair_rule,
        pair_with=args.pair_with,
        jpeg_copies=args.jpeg_copies,
        probe=args.probe,
    )
    return 0
