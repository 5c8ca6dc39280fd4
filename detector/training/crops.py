"""Face crops for training and evaluation, made by the inference code path and cached on disk.

A file's crops are computed exactly as `Detector.analyze` computes them (same key frames, face detector,
margin and size, from the checkpoint's preprocessing config), so training sees what inference sees. They are
cached under `<cache>/<config key>/<md5 of the file>.npz`, so a second run over the same data starts in seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PreprocessingConfig
from ..errors import MediaError
from ..faces import create_face_detector, crop_landmarks, extract_face_tracks
from ..keyframes import select_key_frames
from ..media import ImageMedia, open_media
from ..progress import ProgressLine
from ..settings import CoreSettings
from .datasets import Sample

log = logging.getLogger(__name__)

CACHE_VERSION = 2


@dataclass
class FaceCrops:
    crops: np.ndarray  # (T, S, S, 3) uint8, T = 1 for an image
    landmarks: np.ndarray | None  # (T, 5, 2) float32 in crop pixels, when the detector gave landmarks
    face_found: bool  # False: the whole image stands in for the face


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_crops(path: Path, prep: PreprocessingConfig, detector) -> FaceCrops:
    """Crops of the largest face track of an image or a video, as inference makes them."""
    with open_media(path) as media:
        if isinstance(media, ImageMedia):
            images = [media.image]
        else:
            images = [kf.image for kf in select_key_frames(media, prep.frames)]
    found = extract_face_tracks(
        images, detector, prep.crop_margin, prep.input_size, 1, prep.min_face_size, whole_image_fallback=True
    )
    track, crops = found.tracks[0], found.crops[0]
    marks = [
        crop_landmarks(face, prep.crop_margin, prep.input_size, *images[pos].shape[1::-1])
        for pos, face in sorted(track.faces.items())
    ]
    landmarks = np.stack(marks).astype(np.float32) if all(m is not None for m in marks) else None
    return FaceCrops(np.stack(crops), landmarks, not found.whole_frame)


class CropCache:
    def __init__(
        self,
        prep: PreprocessingConfig,
        cache_dir: str | os.PathLike | None = None,
        yunet_path: str | None = None,
        settings: CoreSettings | None = None,
    ):
        """`cache_dir`: default the settings' crops cache; `settings`: a training entry point reads them from the
        environment when its caller passes none."""
        self.prep = prep
        self.yunet_path = yunet_path
        self.settings = settings = settings or CoreSettings.from_env()
        detector = create_face_detector(prep.face_detector, yunet_path=yunet_path, settings=settings)
        detector_id = detector.name
        if prep.face_detector == "auto" and detector.name != "yunet":
            # Served checkpoints crop with YuNet; crops of another detector make other figures (and another cache).
            log.warning(
                "no YuNet model found (looked in the shared folder %s and $DEEPFAKE_YUNET_MODEL): face crops are made "
                "with %s, unlike the shipped pipeline",
                settings.shared_folder(),
                detector.name,
            )
        if getattr(detector, "model_path", None):
            detector_id += ":" + file_md5(Path(detector.model_path))[:12]
        crop_settings = {  # what the crops depend on: their folder's key
            "version": CACHE_VERSION,
            "detector": detector_id,
            "margin": prep.crop_margin,
            "size": prep.input_size,
            "frames": prep.frames,
            "min_face_size": prep.min_face_size,
        }
        self.key = hashlib.sha1(json.dumps(crop_settings, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(cache_dir or settings.cache_folder("crops")) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "settings.json").write_text(json.dumps(crop_settings, indent=2))
        self.hits = 0
        self.misses = 0

    def _file(self, md5: str) -> Path:
        return self.dir / f"{md5}.npz"

    def load(self, samples: list[Sample], workers: int = 2, progress: bool = True) -> list[FaceCrops | None]:
        """Crops for every sample (None for a file that cannot be read), computing the missing ones."""
        digests = [file_md5(s.path) for s in samples]
        todo = sorted({(d, str(s.path)) for d, s in zip(digests, samples) if not self._file(d).is_file()})
        self.misses += len(todo)
        self.hits += len(samples) - len(todo)
        if todo:
            args = [(path, self.prep, self.yunet_path, self.settings, str(self._file(d))) for d, path in todo]
            bar = ProgressLine("face crops", total=len(args), unit="file", quiet=not progress)
            if workers > 1 and len(args) > 8:
                # spawn, not fork: forking after torch/OpenCV started their thread pools can deadlock
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
                    for _ in pool.map(_crop_to_file, args, chunksize=16):
                        bar.update()
            else:
                for arg in args:
                    _crop_to_file(arg)
                    bar.update()
            bar.close()
        return [_read(self._file(d)) for d in digests]


def _init_worker() -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


_worker_detectors: dict = {}


def _crop_to_file(args: tuple) -> None:
    path, prep, yunet_path, settings, target = args
    key = (prep.face_detector, yunet_path, settings)
    if key not in _worker_detectors:
        _worker_detectors[key] = create_face_detector(prep.face_detector, yunet_path=yunet_path, settings=settings)
    try:
        result = compute_crops(Path(path), prep, _worker_detectors[key])
    except MediaError as exc:
        np.savez(target + ".tmp.npz", error=np.array(exc.message))
    else:
        arrays = {"crops": result.crops, "face_found": np.array(result.face_found)}
        if result.landmarks is not None:
            arrays["landmarks"] = result.landmarks
        np.savez(target + ".tmp.npz", **arrays)
    os.replace(target + ".tmp.npz", target)


def _read(file: Path) -> FaceCrops | None:
    with np.load(file) as data:
        if "error" in data:
            return None
        landmarks = data["landmarks"] if "landmarks" in data else None
        return FaceCrops(data["crops"], landmarks, bool(data["face_found"]))
