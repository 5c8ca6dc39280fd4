"""What one training run of the MobileNetV3-LSTM is told (`python -m detector train` options)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .augment import AugmentConfig


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
    balance_within_source: bool = False  # every source shows its reals and fakes alike (items.EpochSampler)
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
