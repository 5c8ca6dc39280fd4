"""The front door: a `Detector` holds the loaded model(s) (a `TrackScorer`: one checkpoint, or the pair) and turns a
media file into a `Report`.

open (by content) ─► key frames ─► faces: detect, track, crop ─► model ─► calibrate, smooth, decide ─► Report

It is handed its `CoreSettings` (backend, threads, where files lie, C2PA trust anchors); `Detector.load` without them
reads them from the environment, once, for library users.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .backends import create_backend
from .checkpoint import Checkpoint, load_checkpoint
from .decision import moving_average
from .ensemble import PairedViews
from .faces import Face, Track, create_face_detector, extract_face_tracks
from .keyframes import KeyFrame, select_key_frames
from .media import ImageMedia, MediaLimits, open_media
from .provenance import disagreement, read_provenance
from .report import FaceResult, FrameResult, ModelInfo, Report, TrackResult
from .scoring import Progress, SingleView, TrackScorer, TrackScores
from .settings import CoreSettings

__all__ = ["Analysis", "AnalysisOptions", "Detector", "Progress", "TrackScores", "load"]


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


class Detector:
    def __init__(
        self,
        checkpoint: Checkpoint | None = None,
        options: AnalysisOptions | None = None,
        yunet_path: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
        settings: CoreSettings | None = None,
        scorer: TrackScorer | None = None,
    ):
        """One `checkpoint` run on `backend` (default: the settings'), or a `scorer` made already (the pair).
        `settings`: what the shell read at start-up; None reads them from the environment now (library use)."""
        self.settings = settings if settings is not None else CoreSettings.from_env()
        self.options = options or AnalysisOptions()
        self.yunet_path = yunet_path
        self.device = str(device or "cpu")  # another device than the CPU runs on PyTorch (the train extra)
        if scorer is None:
            engine = create_backend(checkpoint, self.settings, backend, self.device, threads)
            scorer = SingleView(checkpoint, engine, batch_size)
        self.scorer = scorer

    @classmethod
    def load(cls, model: str | os.PathLike | None = "default", revision: str | None = None, **kwargs) -> Detector:
        """`default`, a folder, a Hub id, or two of them joined by `+` (the fast and the accurate view combined,
        see detector/ensemble.py). Keyword arguments are the constructor's; without `settings`, they are read from
        the environment here, once."""
        name = str(model or "default")
        if kwargs.get("settings") is None:
            kwargs["settings"] = CoreSettings.from_env()
        if "+" in name:
            fast, accurate = (cls.load(part, revision, **kwargs).scorer for part in name.split("+", 1))
            kwargs = {k: v for k, v in kwargs.items() if k not in ("batch_size", "backend", "threads")}
            return cls(scorer=PairedViews(fast, accurate), **kwargs)
        return cls(load_checkpoint(name, revision), **kwargs)

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint whose preprocessing crops the faces (the fast view's, for the pair)."""
        return self.scorer.checkpoint

    @property
    def config(self):
        """The preprocessing, and the decision the Report states (for the pair: the pair's rule)."""
        return self.scorer.config

    @config.setter
    def config(self, config) -> None:
        self.scorer.config = config

    @property
    def backend(self):
        return self.scorer.backend

    @property
    def model_info(self) -> ModelInfo:
        return self.scorer.model_info

    def face_detector(self, backend: str | None = None):
        return create_face_detector(
            backend or self.options.face_detector or self.config.preprocessing.face_detector,
            self.checkpoint.path,
            self.yunet_path,
            self.settings,
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
        scores = self.scorer.score(found.tracks, found.crops, progress)
        timings["model"] = _ms_since(t)

        report = self._build_report(source_name or Path(source).name, info, key_frames, scores, warnings)
        # the original bytes (a fetched file before anything re-encodes it): what the file says about itself
        report.provenance = read_provenance(source, self.settings.c2pa_trust_anchors)
        report.warnings += filter(None, [disagreement(report.provenance, report.verdict)])
        timings["total"] = _ms_since(started) + timings["fetch"]
        report.timings_ms = {k: round(v, 1) for k, v in timings.items()}
        heatmaps = self.scorer.heatmaps(key_frames, found, scores) if explain else [None] * len(key_frames)
        return Analysis(report, key_frames, heatmaps)

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

        verdict, probability, confidence = self.scorer.decide(scores)
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
