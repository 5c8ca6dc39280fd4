"""Train a MobileNetV3-LSTM checkpoint: `python -m detector train --data PATH --out DIR [options]`.

The loop is here; what it draws from (training/items.py), its losses (losses.py), the network it starts from
(backbone.py), its state (loopstate.py) and validation and calibration (validation.py) have modules of their own.
Crops come from the inference code path (`detector.training.crops`), so training and inference see identical inputs.
Frames sharing a `group` form sequences for the LSTM; single images are sequences of one; a per-frame loss and
a per-sequence loss both train. Sampling balances classes and sources; self-blended pseudo-fakes are mixed in.
The loop: AdamW, cosine schedule with warm-up, early stopping on validation ROC-AUC, best checkpoint kept, fixed
seed, resumable. At the end the temperature, threshold and uncertain band are fitted on validation and written
into the checkpoint's config.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import ModelConfig, PreprocessingConfig
from ..errors import DetectorError
from ..model import MobileNetLSTM
from ..progress import ProgressLine
from ..settings import CoreSettings
from .augment import AugmentConfig
from .backbone import build_model
from .crops import CropCache
from .datasets import DatasetError, Sample, describe, read_dataset
from .items import EpochSampler, Item, build_items, make_batch
from .loopstate import WeightAverage, cosine_with_warmup, keep_freed_memory, load_state, save_state
from .losses import Teacher, sequence_loss
from .options import TrainOptions
from .probe import fit_linear
from .validation import blend, calibrate, score_items, validation_summary

__all__ = ["TrainOptions", "train"]


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class Run:
    """What the epochs of one training run work on."""

    options: TrainOptions
    out: Path
    device: torch.device
    model: MobileNetLSTM
    config: ModelConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: EpochSampler
    average: WeightAverage | None
    train_items: list[Item]
    val_items: list[Item]
    teacher: Teacher | None = None
    projection: nn.Module | None = None
    started: float = field(default_factory=time.time)


def train(options: TrainOptions, samples: list[Sample] | None = None, settings: CoreSettings | None = None) -> Path:
    """Train on `options.data` (or on `samples`, e.g. one fold of the cross-source protocol); the checkpoint folder.
    `settings` (where caches and the CLIP tower lie): read from the environment when not given."""
    started = time.time()
    keep_freed_memory()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_samples, val_samples = _splits(options, samples)
    train_items, val_items, teacher = _items(options, train_samples, val_samples, settings or CoreSettings.from_env())
    run = _set_up(options, out, device, rng, train_items, val_items, teacher)
    run.started = started
    best_epoch, epochs_run = _epochs(run)
    final = load_checkpoint(out / "best")
    model, config = final.model.to(device), final.config
    calibrate(config, val_items, score_items(model, val_items, config.preprocessing), options.threshold_rule)
    config.trained = True
    config.training = {
        "data": str(options.data),
        "command": "python -m detector train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else "",
        "options": {k: v for k, v in asdict(options).items() if k not in ("data", "out")},
        "train_samples": len(train_samples),
        "val_samples": len(val_samples),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "minutes": round((time.time() - started) / 60, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    save_checkpoint(out, model.cpu(), config)
    print(f"saved {out} (best epoch {best_epoch}, {config.training['minutes']} min)", file=sys.stderr)
    return out


def _splits(options: TrainOptions, samples: list[Sample] | None) -> tuple[list[Sample], list[Sample]]:
    samples = samples if samples is not None else read_dataset(options.data)
    train_samples = [s for s in samples if s.split == options.train_split]
    val_samples = [s for s in samples if s.split == options.val_split]
    if not train_samples or not val_samples:
        raise DatasetError(f"{options.data}: need both a {options.train_split!r} and a {options.val_split!r} split")
    print(f"data: {describe(train_samples + val_samples)}", file=sys.stderr)
    return train_samples, val_samples


def _items(
    options: TrainOptions, train_samples: list[Sample], val_samples: list[Sample], settings: CoreSettings
) -> tuple[list[Item], list[Item], Teacher | None]:
    """The training and validation items (face crops, and CLIP embeddings for a teacher), and the teacher."""
    base_prep = (
        load_checkpoint(options.init_from).config.preprocessing
        if options.init_from
        else PreprocessingConfig(input_size=options.input_size)
    )
    cache = CropCache(base_prep, options.cache_dir, settings=settings)
    crops = cache.load(train_samples + val_samples, workers=options.crop_workers)
    print(f"face crops: {cache.hits} from cache, {cache.misses} computed ({cache.dir})", file=sys.stderr)
    embedded = None
    if options.distill > 0:
        from .embeddings import EmbeddingCache, clip_encoder

        store = EmbeddingCache(cache, clip_encoder(settings))
        embedded = store.load(train_samples + val_samples, crops)
        print(f"CLIP embeddings: {store.hits} from cache, {store.misses} computed ({store.dir})", file=sys.stderr)
    n = len(train_samples)
    train_items = build_items(train_samples, crops[:n], True, embedded[:n] if embedded else None)
    val_items = build_items(val_samples, crops[n:], False, embedded[n:] if embedded else None)
    teacher = None
    if options.distill > 0:
        _, fitted = fit_linear(train_items, val_items)
        teacher = Teacher(np.asarray(fitted["weights"], dtype=np.float32), fitted["bias"])
        print(f"teacher: CLIP + logistic regression (C={fitted['C']}), distillation weight {options.distill}", file=sys.stderr)
    if options.real_only:
        train_items = [item for item in train_items if item.label == 0]
        print(f"real faces only: {len(train_items)} items; every fake is a pseudo-fake", file=sys.stderr)
    return train_items, val_items, teacher


def _set_up(
    options: TrainOptions,
    out: Path,
    device: torch.device,
    rng: np.random.Generator,
    train_items: list[Item],
    val_items: list[Item],
    teacher: Teacher | None,
) -> Run:
    """The network, its optimiser (the backbone at its own learning rate), the schedule, the sampler."""
    model, config = build_model(options, train_items, rng)
    model = model.to(device).to(memory_format=torch.channels_last)
    backbone_params = list(model.features.parameters())
    backbone_ids = {id(p) for p in backbone_params}
    head_params = [p for p in model.parameters() if id(p) not in backbone_ids]
    projection = None
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
    sampler = EpochSampler(train_items, options.pseudo_fakes, rng, options.balance_power, options.balance_within_source)
    average = WeightAverage(model, options.ema_decay) if options.ema_decay > 0 else None
    print(f"sampling: {sampler.describe()}", file=sys.stderr)
    return Run(
        options, out, device, model, config, optimizer, scheduler, sampler, average, train_items, val_items, teacher, projection
    )


def _epochs(run: Run) -> tuple[int, int]:
    """Train epoch after epoch, keeping the best on validation in OUT/best and the state to resume from in
    OUT/resume, until the epochs, the patience or the time run out; (best epoch, epochs run)."""
    options, out = run.options, run.out
    state_dir = out / "resume"
    state_dir.mkdir(exist_ok=True)
    best, best_epoch, start_epoch, log_rows = -1.0, -1, 0, []
    if options.resume and (state_dir / "state.json").is_file():
        meta = load_state(state_dir, run.model, run.optimizer, run.scheduler, run.average)
        best, best_epoch, start_epoch, log_rows = meta["best"], meta["best_epoch"], meta["epoch"] + 1, meta["log"]
        run.sampler.rng.bit_generator.state = meta["numpy_rng"]
        print(f"resumed after epoch {meta['epoch']} (best selection {best:.4f} at epoch {best_epoch})", file=sys.stderr)
    for epoch in range(start_epoch, options.epochs):
        epoch_started = time.time()
        losses = _train_epoch(run, epoch)
        row, summary, evaluated = _validate(run, epoch, losses, epoch_started)
        log_rows.append(row)
        improved = summary["selection"] > best
        if improved:
            best, best_epoch = summary["selection"], epoch + 1
            save_checkpoint(out / "best", evaluated, run.config)
        print(
            f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val auc {row['val_roc_auc']:.4f} selection {row['selection']:.4f} "
            f"per source {json.dumps({k: v for k, v in summary['per_source'].items() if v is not None})}"
            f"{' *' if improved else ''} ({row['seconds']:.0f} s)",
            file=sys.stderr,
        )
        _write_log(out / "training_log.csv", log_rows)
        meta = {"epoch": epoch, "best": best, "best_epoch": best_epoch, "log": log_rows, "numpy_rng": run.sampler.rng.bit_generator.state}
        save_state(state_dir, run.model, run.optimizer, run.scheduler, meta, run.average)
        if epoch + 1 - best_epoch >= options.patience:
            print(f"early stop: no better validation selection score for {options.patience} epochs", file=sys.stderr)
            break
        if options.max_minutes and (time.time() - run.started) / 60 > options.max_minutes:
            print(f"time limit of {options.max_minutes} min reached", file=sys.stderr)
            break
    return best_epoch, len(log_rows)


def _train_epoch(run: Run, epoch: int) -> list[float]:
    """One epoch of steps; the losses."""
    options, device, prep = run.options, run.device, run.config.preprocessing
    run.model.train()
    steps_per_epoch = math.ceil(options.samples_per_epoch / options.batch_size)
    picks = run.sampler.draw(options.samples_per_epoch)
    losses = []
    bar = ProgressLine(f"epoch {epoch + 1}/{options.epochs}", steps_per_epoch, "batch")
    for step in range(steps_per_epoch):
        bar.update()
        chunk = picks[step * options.batch_size : (step + 1) * options.batch_size]
        windows: list[tuple[int, int, int, bool]] = []
        images, lengths, labels = make_batch(run.train_items, chunk, options, prep, run.sampler.rng, run.sampler.reals, windows)
        distill = None
        if run.teacher is not None:
            targets = tuple(t.to(device) for t in run.teacher.targets(run.train_items, windows))
            distill = (options.distill, run.projection, targets)
        loss = sequence_loss(run.model, images.to(device), lengths, labels.to(device), options.label_smoothing, distill)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(run.model.parameters(), 5.0)
        run.optimizer.step()
        run.scheduler.step()
        if run.average is not None:
            run.average.update(run.model)
        losses.append(loss.item())
    bar.close()
    return losses


def _validate(run: Run, epoch: int, losses: list[float], epoch_started: float) -> tuple[dict, dict, MobileNetLSTM]:
    """The epoch's row of the training log, its validation summary, and the network validated (the average)."""
    evaluated = run.average.model if run.average is not None else run.model
    raw = score_items(evaluated, run.val_items, run.config.preprocessing)
    summary = validation_summary(run.val_items, blend(raw, run.config.decision.clip_weight))
    row = {
        "epoch": epoch + 1,
        "train_loss": round(float(np.mean(losses)), 5),
        "val_roc_auc": round(summary["roc_auc"], 5),
        "selection": round(summary["selection"], 5),
        **{f"val_auc_{k}": (round(v, 4) if v is not None else "") for k, v in summary["per_source"].items()},
        "lr": round(run.scheduler.get_last_lr()[1], 7),
        "seconds": round(time.time() - epoch_started, 1),
    }
    return row, summary, evaluated


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
    p.add_argument("--balance-within-source", action="store_true",
                   help="show every source's reals and fakes alike, so a source's look is no hint of the label")  # fmt: skip
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
