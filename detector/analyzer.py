"""The front door: a `Detector` holds one loaded checkpoint and turns a media file into a `Report`.

open (by content) ─► key frames ─► faces: detect, track, crop ─► model ─► calibrate, smooth, decide ─► Report
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .backends import create_backend
from .checkpoint import Checkpoint, load_checkpoint
from .decision import calibrated, clip_logit, decide, moving_average
from .explain import FRAME_HEAD_WEIGHT, grad_cam, paste_heatmap
from .faces import Face, FaceTracks, Track, create_face_detector, extract_face_tracks
from .familiarity import unfamiliarity
from .keyframes import KeyFrame, select_key_frames
from .media import ImageMedia, MediaLimits, open_media
from .preprocess import crops_to_array, encode_crops
from .provenance import disagreement, read_provenance
from .report import FaceResult, FrameResult, ModelInfo, Report, TrackResult
from .settings import CoreSettings

# progress(stage, done, total); stages: "decode", "faces", "model"
Progress = Callable[[str, int, int], None]


@dataclass
class AnalysisOptions:
    """Per-call settings; None means "what the checkpoint's config says"."""

    frames: int | None = None
    face_detector: str | None = None
    max_faces: int | None = None
    # When no face is found, score the whole image instead of answering no_face (evaluation uses this).
    whole_image_fallback: bool = False
    limits: MediaLimits = field(default_factory=MediaLimits)


@dataclass
class Analysis:
    """A Report with what it was made from: the key frames (RGB, upright) and optional heatmaps."""

    report: Report
    key_frames: list[KeyFrame]
    heatmaps: list[np.ndarray | None]


@dataclass
class TrackScores:
    track: Track
    frame_probabilities: dict[int, float]  # key-frame position -> calibrated probability
    probability: float
    unfamiliar: bool = False  # the face is unlike the faces the model learned from (detector/familiarity.py)


class Detector:
    def __init__(
        self,
        checkpoint: Checkpoint,
        options: AnalysisOptions | None = None,
        yunet_path: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
    ):
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.options = options or AnalysisOptions()
        self.yunet_path = yunet_path
        self.batch_size = batch_size
        self.device = str(device or "cpu")  # another device than the CPU runs on PyTorch (the train extra)
        self.backend = create_backend(checkpoint, backend or CoreSettings.current().backend, self.device, threads)
        self._head_weight: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        if checkpoint.config.architecture.reference_size:
            self._reference = checkpoint.array("reference")

    @classmethod
    def load(cls, model: str | os.PathLike | None = "default", revision: str | None = None, **kwargs) -> Detector:
        """`default`, a folder, a Hub id, or two of them joined by `+` (the fast and the accurate view combined,
        see detector/ensemble.py)."""
        name = str(model or "default")
        if "+" in name:
            from .ensemble import CombinedDetector

            fast, accurate = name.split("+", 1)
            return CombinedDetector(cls.load(fast, revision, **kwargs), cls.load(accurate, revision, **kwargs))
        return cls(load_checkpoint(name, revision), **kwargs)

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

    def face_detector(self, backend: str | None = None):
        return create_face_detector(
            backend or self.options.face_detector or self.config.preprocessing.face_detector,
            self.checkpoint.path,
            self.yunet_path,
        )

    # ------------------------------------------------------------------------------------------------ analyze

    def analyze(
        self,
        source: str | os.PathLike,
        *,
        source_name: str | None = None,
        progress: Progress | None = None,
        **overrides,
    ) -> Report:
        """Analyse one image or video file. Keyword overrides are `AnalysisOptions` fields for this call. A URL goes
        through `detector.pipeline` (fetch, then analyse), as every shell does."""
        return self.inspect(source, source_name=source_name, progress=progress, **overrides).report

    def inspect(
        self,
        source: str | os.PathLike,
        *,
        explain: bool = False,
        source_name: str | None = None,
        progress: Progress | None = None,
        fetch_ms: float | None = None,
        **overrides,
    ) -> Analysis:
        """Like `analyze`, and also keep the key frames (RGB) and, with `explain`, a Grad-CAM heatmap per key
        frame, for reports that show people why. `fetch_ms`: the time it took to fetch the file, which the
        Report counts in its total (`detector.pipeline` passes it)."""
        options = replace(self.options, **overrides) if overrides else self.options
        prep = self.config.preprocessing
        n_frames = options.frames or prep.frames
        detector = self.face_detector(options.face_detector)
        started = time.perf_counter()
        timings: dict[str, float] = {"fetch": fetch_ms or 0.0}

        with open_media(source, options.limits) as media:
            if isinstance(media, ImageMedia):
                key_frames = [KeyFrame(0, 0.0, media.image, 0.0)]
            else:
                report = (lambda done, total: progress("decode", done, total)) if progress else None
                key_frames = select_key_frames(media, n_frames, progress=report)
            info = media.info
        timings["decode"] = _ms_since(started)

        t = time.perf_counter()
        found = extract_face_tracks(
            [kf.image for kf in key_frames],
            detector,
            prep.crop_margin,
            prep.input_size,
            options.max_faces or prep.max_faces,
            prep.min_face_size,
            options.whole_image_fallback,
            progress=(lambda done, total: progress("faces", done, total)) if progress else None,
        )
        warnings = ["no face found: the whole frame was scored"] if found.whole_frame else []
        timings["faces"] = _ms_since(t)

        t = time.perf_counter()
        scores = self._score_tracks(found.tracks, found.crops, progress)
        timings["model"] = _ms_since(t)

        report = self._build_report(source_name or Path(source).name, info, key_frames, scores, warnings)
        # the original bytes (a fetched file before anything re-encodes it): what the file says about itself
        report.provenance = read_provenance(source, CoreSettings.current().c2pa_trust_anchors)
        report.warnings += filter(None, [disagreement(report.provenance, report.verdict)])
        timings["total"] = _ms_since(started) + timings["fetch"]
        report.timings_ms = {k: round(v, 1) for k, v in timings.items()}
        heatmaps = self._heatmaps(key_frames, found, scores) if explain else [None] * len(key_frames)
        return Analysis(report, key_frames, heatmaps)

    def _heatmaps(self, key_frames: list[KeyFrame], found: FaceTracks, scores: list[TrackScores]) -> list[np.ndarray | None]:
        """A frame-sized Grad-CAM map per key frame (None where no face was analysed, and for CLIP's frozen
        encoder, whose maps are not ours to explain)."""
        prep, decision = self.config.preprocessing, self.config.decision
        maps: list[np.ndarray | None] = [None] * len(key_frames)
        if self.config.architecture.frozen_encoder:
            return maps
        if self._head_weight is None:
            self._head_weight = self.checkpoint.array(FRAME_HEAD_WEIGHT)
        for track, crops, score in zip(found.tracks, found.crops, scores):
            activations = self.backend.feature_maps(crops_to_array(np.stack(crops), prep))
            if activations is None:  # an export made before feature maps were one of its outputs
                return maps
            towards_fake = np.full(len(crops), score.probability >= decision.threshold)
            cams = grad_cam(activations, self._head_weight, towards_fake, prep.input_size)
            for cam, (position, face) in zip(cams, sorted(track.faces.items())):
                image = key_frames[position].image
                if maps[position] is None:
                    maps[position] = np.zeros(image.shape[:2], dtype=np.float32)
                paste_heatmap(maps[position], cam, face, prep.crop_margin)
        return maps

    def _score_tracks(self, tracks: list[Track], crops: list[list[np.ndarray]], progress: Progress | None) -> list[TrackScores]:
        """All crops of the clip through the encoder in batches, then each track's features through the LSTM."""
        if not tracks:
            return []
        flat = [c for track_crops in crops for c in track_crops]
        features = []
        for start in range(0, len(flat), self.batch_size):
            batch = np.stack(flat[start : start + self.batch_size])
            features.append(encode_crops(self.backend.encode, batch, self.config.preprocessing))
            if progress:
                progress("model", min(start + self.batch_size, len(flat)), len(flat))
        features = np.concatenate(features)
        decision = self.config.decision
        reference = self._reference
        results, offset = [], 0
        for track, track_crops in zip(tracks, crops):
            n = len(track_crops)
            track_features = features[offset : offset + n]
            frame_logits, clip = self.backend.sequence(track_features[None])
            offset += n
            frame_logits = frame_logits[0].astype(np.float64).tolist()
            positions = sorted(track.faces)
            probs = {p: calibrated(lg, decision.frame_temperature, decision.frame_bias) for p, lg in zip(positions, frame_logits)}
            logit = clip_logit(float(clip[0]), frame_logits, decision.clip_weight)
            unfamiliar = False
            if reference is not None and decision.unfamiliar_above is not None:
                distance = float(unfamiliarity(track_features[:, : reference.shape[1]], reference).mean())
                unfamiliar = distance > decision.unfamiliar_above
            results.append(TrackScores(track, probs, calibrated(logit, decision.temperature, decision.bias), unfamiliar))
        return results

    def _decide(self, scores: list[TrackScores]) -> tuple[str, float | None, float | None]:
        """(verdict, fake probability, confidence) of the clip: its most suspicious face track decides; a face
        unlike anything in training is answered uncertain rather than guessed."""
        if not scores:
            return "no_face", None, None
        worst = max(scores, key=lambda s: s.probability)
        verdict, confidence = decide(worst.probability, self.config.decision)
        if worst.unfamiliar and verdict in ("real", "fake"):
            verdict, confidence = "uncertain", max(worst.probability, 1.0 - worst.probability)
        return verdict, worst.probability, confidence

    def _build_report(
        self, source: str, info, key_frames: list[KeyFrame], scores: list[TrackScores], warnings: list[str]
    ) -> Report:
        decision = self.config.decision
        frames = []
        for pos, kf in enumerate(key_frames):
            faces = []
            for s in scores:
                face: Face | None = s.track.faces.get(pos)
                if face is not None:
                    height, width = kf.image.shape[:2]
                    faces.append(
                        FaceResult(
                            s.track.id,
                            face.box(width, height),
                            round(face.score, 4),
                            _r(s.frame_probabilities[pos]),
                            face.whole_frame,
                        )
                    )
            raw = max((f.fake_probability for f in faces), default=None)
            frames.append(FrameResult(kf.index, round(kf.timestamp_s, 4), raw, None, faces))
        for frame, value in zip(frames, moving_average([f.fake_probability for f in frames], decision.smoothing_window)):
            frame.smoothed_probability = _r(value) if value is not None else None

        verdict, probability, confidence = self._decide(scores)
        if any(s.unfamiliar for s in scores):
            warnings = [*warnings, UNFAMILIAR_WARNING]
        tracks = [
            TrackResult(s.track.id, len(s.track.faces), _r(s.probability), _mean_box(s.track, info.width, info.height), s.unfamiliar)
            for s in scores
        ]
        media = replace(info, frames_analyzed=len(key_frames))
        if not self.config.trained:
            warnings = [
                "UNTRAINED MODEL: this checkpoint was not trained for deepfake detection; its scores mean nothing",
                *warnings,
            ]
        return Report(
            source=source,
            verdict=verdict,
            fake_probability=_r(probability) if probability is not None else None,
            confidence=_r(confidence) if confidence is not None else None,
            threshold=decision.threshold,
            uncertain_band=list(decision.uncertain_band),
            media=media,
            frames=frames,
            tracks=tracks,
            model=self.model_info,
            timings_ms={},
            warnings=warnings,
            unfamiliar=any(s.unfamiliar for s in scores),
        )


UNFAMILIAR_WARNING = (
    "a face is unlike the faces this model learned from: its score is less reliable, so it is not called real or fake"
)


def _mean_box(track: Track, width: int, height: int) -> list[float]:
    boxes = np.array([f.box(width, height) for f in track.faces.values()])
    return [round(float(v), 1) for v in boxes.mean(axis=0)]


def _r(value: float) -> float:
    return round(float(value), 6)


def _ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0


def load(model: str | os.PathLike | None = "default", revision: str | None = None, **kwargs) -> Detector:
    """Load a detector by name: `default`, a checkpoint folder, or a Hub id `org/name[@revision]`."""
    return Detector.load(model, revision, **kwargs)
