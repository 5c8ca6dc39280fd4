"""The checkpoint's config: everything that must match between training and inference.

`config.json` beside `model.safetensors` is the single source of truth for the architecture, the
preprocessing (crop margin, input size, normalisation, frames) and the decision (temperature, threshold,
uncertain band, labels). Training writes it, inference reads it, nothing else hard-codes these values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelFormatError

FORMAT_VERSION = 1
FACE_DETECTORS = ("auto", "yunet", "dlib", "none")  # `none`: the input is already a face crop
PAIR_RULES = ("agree", "veto", "stack")  # how a pair of views decides (PairConfig.rule, detector/ensemble.py)
ARCHITECTURE_NAME = "mobilenetv3-lstm"
CLIP_ARCHITECTURE_NAME = "clip-lstm"
CLIP_BACKBONE = "clip_vit_b16"
# Backbone -> feature size. The MobileNetV3 backbones are part of the weights; CLIP's image tower is not (frozen,
# run from its own ONNX file, see detector/clip.py): a clip-lstm checkpoint holds the sequence head only.
BACKBONES = {"mobilenet_v3_small": 576, "mobilenet_v3_large": 960, CLIP_BACKBONE: 512}
CLIP_BLOCKS, CLIP_WIDTH = 12, 768  # a clip-lstm may also read the class token of these blocks (`clip_layers`)
ARCHITECTURES = {ARCHITECTURE_NAME: ("mobilenet_v3_small", "mobilenet_v3_large"), CLIP_ARCHITECTURE_NAME: (CLIP_BACKBONE,)}


@dataclass
class ArchitectureConfig:
    name: str = ARCHITECTURE_NAME
    backbone: str = "mobilenet_v3_small"
    lstm_hidden: int = 128
    lstm_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    # clip-lstm: how many CLIP embeddings of training faces the weights keep, to tell a face unlike all of them
    reference_size: int = 0
    # clip-lstm: the blocks (0-11) whose class token the heads read beside the final embedding (several depths of the
    # tower, RINE); empty: the final embedding only. With them, a learned projection to `projection_dim` comes first.
    clip_layers: list[int] = field(default_factory=list)
    projection_dim: int = 0
    # clip-lstm: the weights also hold a linear probe on CLIP's unit embedding (`probe`: its embedding_dim weights,
    # then its bias; Ojha et al., 2023), a second opinion a "fake" needs (DecisionConfig.probe_fake_above)
    probe: bool = False

    @property
    def feature_dim(self) -> int:
        """Width of one frame's features as the encoder gives them (the heads' input)."""
        return BACKBONES[self.backbone] + CLIP_WIDTH * len(self.clip_layers)

    @property
    def embedding_dim(self) -> int:
        """Width of the leading part of the features that familiarity compares (CLIP's unit embedding)."""
        return BACKBONES[self.backbone]

    @property
    def head_dim(self) -> int:
        """Width the frame head and the LSTM read: the projection's, when there is one."""
        return self.projection_dim or self.feature_dim

    @property
    def frozen_encoder(self) -> bool:
        """Whether the frame encoder lives outside the weights (CLIP's image tower)."""
        return self.backbone == CLIP_BACKBONE

    def validate(self) -> None:
        if self.name not in ARCHITECTURES:
            raise ModelFormatError(f"architecture {self.name!r} is not one of {sorted(ARCHITECTURES)}")
        if self.backbone not in ARCHITECTURES[self.name]:
            raise ModelFormatError(
                f"unknown backbone {self.backbone!r} for {self.name}; expected one of {ARCHITECTURES[self.name]}"
            )
        if self.lstm_hidden < 1 or self.lstm_layers < 1:
            raise ModelFormatError("lstm_hidden and lstm_layers must be positive")
        if self.clip_layers and (self.backbone != CLIP_BACKBONE or not all(0 <= b < CLIP_BLOCKS for b in self.clip_layers)):
            raise ModelFormatError(f"clip_layers need the {CLIP_BACKBONE} backbone and blocks within 0-{CLIP_BLOCKS - 1}")
        if self.projection_dim < 0 or (self.projection_dim and not self.clip_layers):
            raise ModelFormatError("projection_dim must be >= 0, and is only used with clip_layers")
        if self.probe and self.backbone != CLIP_BACKBONE:
            raise ModelFormatError(f"a probe reads CLIP's embedding: it needs the {CLIP_BACKBONE} backbone")


@dataclass
class PreprocessingConfig:
    input_size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    crop_margin: float = 1.3
    frames: int = 16
    max_faces: int = 2
    face_detector: str = "auto"
    # Faces smaller than this (pixels, shorter side of the box) are ignored: too little detail to judge.
    min_face_size: int = 24
    # Average each crop's features with its mirror image's: steadier scores for a second, cheap encoder pass.
    tta_flip: bool = False

    def validate(self) -> None:
        if self.input_size < 32:
            raise ModelFormatError("input_size must be at least 32")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelFormatError("mean and std need three values, std positive")
        if self.crop_margin < 1.0:
            raise ModelFormatError("crop_margin must be >= 1.0")
        if self.frames < 1 or self.max_faces < 1:
            raise ModelFormatError("frames and max_faces must be positive")


@dataclass
class DecisionConfig:
    # Calibrated probability = sigmoid(logit / temperature + bias) (Platt scaling), fitted on the validation split.
    temperature: float = 1.0
    bias: float = 0.0
    frame_temperature: float = 1.0
    frame_bias: float = 0.0
    # Clip logit = clip_weight * LSTM clip head + (1 - clip_weight) * mean of per-frame logits.
    clip_weight: float = 0.5
    threshold: float = 0.5
    # Probabilities inside [low, high] are reported as "uncertain".
    uncertain_band: list[float] = field(default_factory=lambda: [0.4, 0.6])
    smoothing_window: int = 5
    # A face whose embedding lies farther than this from every kept training face (mean cosine distance to its
    # nearest ones) is "unlike anything in training": answered uncertain. None: not checked (no reference kept).
    unfamiliar_above: float | None = None
    # With a probe (ArchitectureConfig.probe): its logit, averaged over a track's frames, at or above which it says
    # fake. A "fake" needs the heads and the probe to agree (in a pair: the probe or the fast view): two heads trained
    # differently on the same features rarely label the same unseen real face fake (docs/cross-source.md, run 7).
    probe_fake_above: float | None = None

    def validate(self) -> None:
        low, high = self.uncertain_band
        if not (0.0 <= low <= self.threshold <= high <= 1.0):
            raise ModelFormatError("need 0 <= uncertain_band[0] <= threshold <= uncertain_band[1] <= 1")
        if self.temperature <= 0 or self.frame_temperature <= 0:
            raise ModelFormatError("temperatures must be positive")
        if not 0.0 <= self.clip_weight <= 1.0:
            raise ModelFormatError("clip_weight must be within [0, 1]")
        if self.smoothing_window < 1:
            raise ModelFormatError("smoothing_window must be >= 1")


@dataclass
class PairConfig:
    """How this checkpoint decides when it is the accurate view of a pair with a fast view (detector/ensemble.py).

    `agree`: the verdict both views give, else uncertain. `veto`: fake where both say fake, real where one says real
    and the other does not say fake. `stack`: one probability from both views' calibrated logits,
    sigmoid((w_fast * logit(p_fast) + w_accurate * logit(p_accurate) + w_0) / temperature + bias), judged by its own
    threshold and band; fitted on validation with the fast view whose weights digest is `fast_revision` (with any
    other fast view the pair falls back to `agree`)."""

    rule: str = "agree"
    fast_revision: str = ""
    weights: list[float] = field(default_factory=list)  # stack: [fast, accurate, intercept]
    temperature: float = 1.0
    bias: float = 0.0
    threshold: float = 0.5
    uncertain_band: list[float] = field(default_factory=lambda: [0.5, 0.5])

    def validate(self) -> None:
        if self.rule not in PAIR_RULES:
            raise ModelFormatError(f"pair rule must be one of {PAIR_RULES}")
        if self.rule == "stack":
            if len(self.weights) != 3 or not self.fast_revision:
                raise ModelFormatError("a stacked pair needs three weights and the fast view's revision")
            DecisionConfig(
                temperature=self.temperature, threshold=self.threshold, uncertain_band=list(self.uncertain_band)
            ).validate()


@dataclass
class ModelConfig:
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    pair: PairConfig = field(default_factory=PairConfig)
    labels: list[str] = field(default_factory=lambda: ["real", "fake"])
    format_version: int = FORMAT_VERSION
    # Whether the weights were trained for this task; an untrained model must say so in every Report.
    trained: bool = False
    # Free-form provenance written by training (data, command, metrics); never read by inference.
    training: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> ModelConfig:
        if self.format_version != FORMAT_VERSION:
            raise ModelFormatError(
                f"checkpoint format version {self.format_version} is not supported (this code reads {FORMAT_VERSION})"
            )
        if self.labels != ["real", "fake"]:
            raise ModelFormatError(f"labels must be ['real', 'fake'], got {self.labels}")
        self.architecture.validate()
        self.preprocessing.validate()
        self.decision.validate()
        self.pair.validate()
        if self.architecture.probe != (self.decision.probe_fake_above is not None):
            raise ModelFormatError("a probe (architecture.probe) and its cut (decision.probe_fake_above) go together")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ModelFormatError("config.json must hold a JSON object")
        sections = {
            "architecture": ArchitectureConfig,
            "preprocessing": PreprocessingConfig,
            "decision": DecisionConfig,
            "pair": PairConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, key)
            elif key in {"labels", "format_version", "trained", "training"}:
                kwargs[key] = value
            else:
                raise ModelFormatError(f"unknown key {key!r} in config.json")
        return cls(**kwargs).validate()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelFormatError(f"{path} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _build(section: type, value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise ModelFormatError(f"config section {name!r} must be an object")
    known = {f.name for f in dataclasses.fields(section)}
    unknown = set(value) - known
    if unknown:
        raise ModelFormatError(f"unknown keys in config section {name!r}: {sorted(unknown)}")
    try:
        return section(**value)
    except TypeError as exc:
        raise ModelFormatError(f"bad config section {name!r}: {exc}") from None
