"""Find faces in frames, link them into tracks over time, and cut the crops the model sees.

Backends share one interface (`FaceDetector.detect(rgb) -> list[Face]`):
- `yunet`: OpenCV's `FaceDetectorYN` with a YuNet model file (fast, robust to pose);
- `dlib`: dlib's HOG frontal face detector (no model file needed);
- `none`: the frame already is a face crop: the whole frame is the face.
`auto` picks yunet when a model file can be found, else dlib. Detection runs on a downscaled copy and boxes are
mapped back to full resolution, so crops keep all the detail the model needs.
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .config import FACE_DETECTORS
from .errors import FaceDetectorError
from .settings import CoreSettings

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

YUNET_FILE = "face_detection_yunet.onnx"
BACKENDS = FACE_DETECTORS


@dataclass
class Face:
    x: float
    y: float
    w: float
    h: float
    score: float
    whole_frame: bool = False
    # Five points (right eye, left eye, nose tip, right and left mouth corners) when the detector gives them.
    landmarks: list[tuple[float, float]] | None = None

    @property
    def area(self) -> float:
        return self.w * self.h

    def box(self, width: int, height: int) -> list[float]:
        """The box clipped to a width x height frame, as [x, y, w, h] (crops use the unclipped box)."""
        x0, y0 = min(max(self.x, 0.0), width), min(max(self.y, 0.0), height)
        x1, y1 = min(max(self.x + self.w, 0.0), width), min(max(self.y + self.h, 0.0), height)
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


class FaceDetector:
    name = "base"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        raise NotImplementedError


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb, scale


def _pad_small(rgb: np.ndarray, min_side: int) -> tuple[np.ndarray, int]:
    """Face crops that the face fills edge to edge are found more reliably with some border around them."""
    h, w = rgb.shape[:2]
    if max(h, w) >= min_side:
        return rgb, 0
    pad = max(h, w) // 4
    return cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad


class YuNetFaceDetector(FaceDetector):
    name = "yunet"

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.6, max_side: int = 640):
        self.model_path = str(model_path)
        if not Path(self.model_path).is_file():
            raise FaceDetectorError(f"YuNet model file not found: {self.model_path}")
        try:
            self._net = cv2.FaceDetectorYN.create(self.model_path, "", (320, 320), score_threshold, 0.3, 50)
        except cv2.error as exc:
            raise FaceDetectorError(f"cannot load the YuNet model {self.model_path}: {exc}") from None
        self.max_side = max_side
        self._lock = threading.Lock()  # an OpenCV DNN net must not run two inferences at once

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, scale = _downscale(rgb, self.max_side)
        small, pad = _pad_small(small, 320)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, found = self._net.detect(bgr)
        faces = []
        for row in found if found is not None else []:
            x, y, w, h = (float(v) for v in row[:4])
            points = [((float(row[i]) - pad) / scale, (float(row[i + 1]) - pad) / scale) for i in range(4, 14, 2)]
            faces.append(Face((x - pad) / scale, (y - pad) / scale, w / scale, h / scale, float(row[14]), landmarks=points))
        return faces


class DlibFaceDetector(FaceDetector):
    """dlib's HOG detector; its boxes are tighter than YuNet's, so they are grown to a comparable framing."""

    name = "dlib"

    def __init__(self, max_side: int = 960):
        try:
            import dlib
        except ImportError:  # pragma: no cover - dlib-bin is in requirements.txt
            raise FaceDetectorError("the dlib face detector needs the dlib-bin package") from None
        self._detector = dlib.get_frontal_face_detector()
        self.max_side = max_side
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, scale = _downscale(rgb, self.max_side)
        small, pad = _pad_small(small, 320)
        with self._lock:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(small), 0, 0.0)
            if not rects and max(small.shape[:2]) <= 480:
                rects, scores, _ = self._detector.run(np.ascontiguousarray(small), 1, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            x, y, w, h = rect.left() - pad, rect.top() - pad, rect.width(), rect.height()
            # dlib's square box stops at the eyebrows; extend it up so it frames the face like YuNet's box.
            grown_h = h * 1.2
            faces.append(Face(x / scale, (y - (grown_h - h)) / scale, w / scale, grown_h / scale, float(score)))
        return faces


class WholeFrameDetector(FaceDetector):
    name = "none"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        return [Face(0.0, 0.0, float(w), float(h), 1.0, whole_frame=True)]


def whole_frame_face(rgb: np.ndarray) -> Face:
    return WholeFrameDetector().detect(rgb)[0]


def find_yunet_model(
    checkpoint_dir: str | os.PathLike | None = None, explicit: str | None = None, settings: CoreSettings | None = None
) -> str | None:
    """Where to find a YuNet file: explicit path, the settings' `yunet_model` ($DEEPFAKE_YUNET_MODEL), the checkpoint
    folder, the shared models (the settings' `shared_dir`)."""
    settings = settings or CoreSettings()
    configured = settings.yunet_model
    candidates = [explicit, str(configured) if configured else None]
    if checkpoint_dir:
        candidates += sorted(glob.glob(os.path.join(str(checkpoint_dir), "*yunet*.onnx")))
    candidates.append(str(settings.shared_folder() / "models" / YUNET_FILE))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


_detector_cache: dict[tuple, FaceDetector] = {}
_cache_lock = threading.Lock()


def create_face_detector(
    backend: str = "auto",
    checkpoint_dir: str | os.PathLike | None = None,
    yunet_path: str | None = None,
    settings: CoreSettings | None = None,
) -> FaceDetector:
    """Build (once per process and settings) the face detector for `backend`; `settings` (default: the built-in
    defaults) say where a YuNet file may lie."""
    if backend not in BACKENDS:
        raise FaceDetectorError(f"unknown face detector {backend!r}; choose one of {', '.join(BACKENDS)}")
    model = find_yunet_model(checkpoint_dir, yunet_path, settings) if backend in ("auto", "yunet") else None
    if backend == "yunet" and model is None:
        raise FaceDetectorError("the yunet face detector needs its model file: pass its path or set DEEPFAKE_YUNET_MODEL")
    if backend == "auto":
        backend = "yunet" if model else "dlib"
    key = (backend, model)
    with _cache_lock:
        if key not in _detector_cache:
            if backend == "yunet":
                _detector_cache[key] = YuNetFaceDetector(model)
            elif backend == "dlib":
                _detector_cache[key] = DlibFaceDetector()
            else:
                _detector_cache[key] = WholeFrameDetector()
        return _detector_cache[key]


# ---------------------------------------------------------------------------------------------- tracking


@dataclass
class Track:
    id: int
    faces: dict[int, Face] = field(default_factory=dict)  # key-frame position -> face

    @property
    def weight(self) -> float:
        return sum(face.area for face in self.faces.values())

    def last(self) -> Face:
        return self.faces[max(self.faces)]


def iou(a: Face, b: Face) -> float:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _affinity(a: Face, b: Face) -> float:
    """Box overlap, with a fallback on centre distance for faces that moved between sparse key frames."""
    overlap = iou(a, b)
    if overlap > 0:
        return overlap
    size = max(a.w, a.h, b.w, b.h)
    dx = (a.x + a.w / 2) - (b.x + b.w / 2)
    dy = (a.y + a.h / 2) - (b.y + b.h / 2)
    distance = (dx * dx + dy * dy) ** 0.5 / size
    return max(0.0, 0.5 - distance) * 0.5


def link_tracks(faces_per_frame: list[list[Face]], max_tracks: int, min_affinity: float = 0.1) -> list[Track]:
    """Link detections across frames into tracks (greedy by overlap) and keep the `max_tracks` largest."""
    tracks: list[Track] = []
    for position, faces in enumerate(faces_per_frame):
        pairs = sorted(
            ((_affinity(track.last(), face), t, f) for t, track in enumerate(tracks) for f, face in enumerate(faces)),
            key=lambda item: -item[0],
        )
        used_tracks, used_faces = set(), set()
        for score, t, f in pairs:
            if score < min_affinity or t in used_tracks or f in used_faces:
                continue
            tracks[t].faces[position] = faces[f]
            used_tracks.add(t)
            used_faces.add(f)
        for f, face in enumerate(faces):
            if f not in used_faces:
                tracks.append(Track(id=len(tracks), faces={position: face}))
    tracks.sort(key=lambda track: -track.weight)
    kept = tracks[:max_tracks]
    for new_id, track in enumerate(kept):
        track.id = new_id
    return kept


# ---------------------------------------------------------------------------------------------- cropping


@dataclass
class FaceTracks:
    """The faces of a list of frames: the kept tracks and, per track, its crops in frame order."""

    tracks: list[Track]
    crops: list[list[np.ndarray]]
    whole_frame: bool  # no face was found and the whole frames stand in for one


def extract_face_tracks(
    images: list[np.ndarray],
    detector: FaceDetector,
    margin: float,
    size: int,
    max_faces: int,
    min_face_size: int = 0,
    whole_image_fallback: bool = False,
    progress=None,
) -> FaceTracks:
    """Detect, link and crop: the one path from frames to model inputs, shared by inference and training."""
    per_frame = []
    for i, image in enumerate(images):
        per_frame.append([f for f in detector.detect(image) if min(f.w, f.h) >= min_face_size])
        if progress:
            progress(i + 1, len(images))
    tracks = link_tracks(per_frame, max_faces)
    whole = False
    if not tracks and whole_image_fallback:
        tracks = [Track(0, {i: whole_frame_face(image) for i, image in enumerate(images)})]
        whole = True
    crops = [[crop_face(images[pos], face, margin, size) for pos, face in sorted(t.faces.items())] for t in tracks]
    return FaceTracks(tracks, crops, whole)


def crop_window(face: Face, margin: float, width: int, height: int) -> tuple[int, int, int]:
    """The square crop around a face in a width x height frame, as (x0, y0, side): `margin` times the box's
    longer side, centred on the box, then moved (and if need be shrunk) to stay inside the frame.

    Staying inside matters: black padding would appear only on faces near the border of tight face photos, and a
    model learns such a shortcut instantly. The whole-frame "face" keeps the whole frame (no margin)."""
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    if face.whole_frame:
        side = max(face.w, face.h)
        return int(round(cx - side / 2)), int(round(cy - side / 2)), max(1, int(round(side)))
    side = min(max(face.w, face.h) * margin, min(width, height))
    x0 = min(max(cx - side / 2, 0.0), max(width - side, 0.0))
    y0 = min(max(cy - side / 2, 0.0), max(height - side, 0.0))
    return int(round(x0)), int(round(y0)), max(1, int(round(side)))


def crop_landmarks(face: Face, margin: float, size: int, width: int, height: int) -> np.ndarray | None:
    """The face's landmarks in the coordinates of its `size` x `size` crop (None when the detector gave none)."""
    if not face.landmarks:
        return None
    x0, y0, side = crop_window(face, margin, width, height)
    return (np.asarray(face.landmarks, dtype=np.float32) - [x0, y0]) * (size / side)


def crop_face(rgb: np.ndarray, face: Face, margin: float, size: int) -> np.ndarray:
    """The square crop of `crop_window` resized to `size` (a whole frame that is not square is padded with black)."""
    h, w = rgb.shape[:2]
    x0, y0, s = crop_window(face, margin, w, h)
    canvas = np.zeros((s, s, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    interpolation = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return cv2.resize(canvas, (size, size), interpolation=interpolation)
