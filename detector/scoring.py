"""Scoring the face tracks of a clip: the `TrackScorer` a `Detector` takes, and its one-checkpoint form `SingleView`.

    crops of each face track ─► TrackScorer.score ─► TrackScores (per frame, per track) ─► TrackScorer.decide ─► verdict

A `SingleView` runs one checkpoint (its encoder and LSTM heads on a backend). `PairedViews` (detector/ensemble.py)
runs two and combines them; the detector around either finds faces, crops them and writes the Report the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .checkpoint import Checkpoint
from .config import ModelConfig
from .decision import calibrated, clip_logit, decide
from .explain import FRAME_HEAD_WEIGHT, grad_cam, paste_heatmap
from .faces import FaceTracks, Track
from .familiarity import unfamiliarity
from .keyframes import KeyFrame
from .preprocess import crops_to_array, encode_crops
from .report import ModelInfo

# progress(stage, done, total); stages: "decode", "faces", "model"
Progress = Callable[[str, int, int], None]


@dataclass
class TrackScores:
    track: Track
    frame_probabilities: dict[int, float]  # key-frame position -> calibrated probability
    probability: float
    unfamiliar: bool = False  # the face is unlike the faces the model learned from (detector/familiarity.py)
    probe_fake: bool | None = None  # the view's linear probe says fake (None: the view has no probe)


class TrackScorer(Protocol):
    """What a `Detector` needs of the model(s) behind it."""

    checkpoint: Checkpoint  # whose preprocessing crops the faces (and whose folder may hold a YuNet file)
    config: ModelConfig  # the preprocessing, and the decision the Report states (threshold, band, smoothing)
    backend: object  # the backend the crops are encoded on (its `name` goes into `model_info`)

    @property
    def model_info(self) -> ModelInfo: ...

    def score(self, tracks: list[Track], crops: list[list[np.ndarray]], progress: Progress | None) -> list[TrackScores]:
        """Each track's calibrated probabilities, per key frame and for the track."""
        ...

    def decide(self, scores: list[TrackScores]) -> tuple[str, float | None, float | None]:
        """(verdict, fake probability, confidence) of the clip."""
        ...

    def heatmaps(self, key_frames: list[KeyFrame], found: FaceTracks, scores: list[TrackScores]) -> list[np.ndarray | None]:
        """A frame-sized heatmap per key frame, or None where there is none."""
        ...


class SingleView:
    """One checkpoint: its encoder over the crops in batches, its LSTM over each track, its decision."""

    def __init__(self, checkpoint: Checkpoint, backend, batch_size: int = 32):
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.backend = backend
        self.batch_size = batch_size
        self._head_weight: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        if checkpoint.config.architecture.reference_size:
            self._reference = checkpoint.array("reference")
        self._probe: np.ndarray | None = checkpoint.array("probe") if checkpoint.config.architecture.probe else None

    @property
    def model_info(self) -> ModelInfo:
        ckpt = self.checkpoint
        return ModelInfo(
            id=ckpt.id,
            revision=ckpt.revision,
            architecture=ckpt.architecture,
            input_size=self.config.preprocessing.input_size,
            trained=self.config.trained,
            backend=self.backend.name,
        )

    def score(self, tracks: list[Track], crops: list[list[np.ndarray]], progress: Progress | None) -> list[TrackScores]:
        """All crops of the clip through the encoder in batches, then each track's features through the LSTM."""
        if not tracks:
            return []
        features = self._encode([c for track_crops in crops for c in track_crops], progress)
        results, offset = [], 0
        for track, track_crops in zip(tracks, crops):
            n = len(track_crops)
            results.append(self._score_track(track, features[offset : offset + n]))
            offset += n
        return results

    def _encode(self, flat: list[np.ndarray], progress: Progress | None) -> np.ndarray:
        features = []
        for start in range(0, len(flat), self.batch_size):
            batch = np.stack(flat[start : start + self.batch_size])
            features.append(encode_crops(self.backend.encode, batch, self.config.preprocessing))
            if progress:
                progress("model", min(start + self.batch_size, len(flat)), len(flat))
        return np.concatenate(features)

    def _score_track(self, track: Track, track_features: np.ndarray) -> TrackScores:
        decision, reference = self.config.decision, self._reference
        frame_logits, clip = self.backend.sequence(track_features[None])
        frame_logits = frame_logits[0].astype(np.float64).tolist()
        positions = sorted(track.faces)
        probs = {p: calibrated(lg, decision.frame_temperature, decision.frame_bias) for p, lg in zip(positions, frame_logits)}
        logit = clip_logit(float(clip[0]), frame_logits, decision.clip_weight)
        unfamiliar = False
        if reference is not None and decision.unfamiliar_above is not None:
            distance = float(unfamiliarity(track_features[:, : reference.shape[1]], reference).mean())
            unfamiliar = distance > decision.unfamiliar_above
        probe_fake = None
        if self._probe is not None and decision.probe_fake_above is not None:
            embeddings = track_features[:, : len(self._probe) - 1].astype(np.float64)
            probe_fake = float((embeddings @ self._probe[:-1] + self._probe[-1]).mean()) >= decision.probe_fake_above
        return TrackScores(track, probs, calibrated(logit, decision.temperature, decision.bias), unfamiliar, probe_fake)

    def decide(self, scores: list[TrackScores]) -> tuple[str, float | None, float | None]:
        """The clip's most suspicious face track decides; a face unlike anything in training is answered uncertain
        rather than guessed."""
        if not scores:
            return "no_face", None, None
        worst = max(scores, key=lambda s: s.probability)
        verdict, confidence = decide(worst.probability, self.config.decision)
        withheld = verdict == "fake" and worst.probe_fake is False  # the probe does not agree
        if withheld or (worst.unfamiliar and verdict in ("real", "fake")):
            verdict, confidence = "uncertain", max(worst.probability, 1.0 - worst.probability)
        return verdict, worst.probability, confidence

    def heatmaps(
        self, key_frames: list[KeyFrame], found: FaceTracks, scores: list[TrackScores], threshold: float | None = None
    ) -> list[np.ndarray | None]:
        """A frame-sized Grad-CAM map per key frame towards the side of `threshold` (default: this view's) each
        track's probability is on (None where no face was analysed, and for CLIP's frozen encoder, whose maps are not
        ours to explain)."""
        prep = self.config.preprocessing
        threshold = self.config.decision.threshold if threshold is None else threshold
        maps: list[np.ndarray | None] = [None] * len(key_frames)
        if self.config.architecture.frozen_encoder:
            return maps
        if self._head_weight is None:
            self._head_weight = self.checkpoint.array(FRAME_HEAD_WEIGHT)
        for track, crops, score in zip(found.tracks, found.crops, scores):
            activations = self.backend.feature_maps(crops_to_array(np.stack(crops), prep))
            if activations is None:  # an export made before feature maps were one of its outputs
                return maps
            towards_fake = np.full(len(crops), score.probability >= threshold)
            cams = grad_cam(activations, self._head_weight, towards_fake, prep.input_size)
            for cam, (position, face) in zip(cams, sorted(track.faces.items())):
                image = key_frames[position].image
                if maps[position] is None:
                    maps[position] = np.zeros(image.shape[:2], dtype=np.float32)
                paste_heatmap(maps[position], cam, face, prep.crop_margin)
        return maps
