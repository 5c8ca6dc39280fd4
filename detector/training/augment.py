"""Training-time augmentation aimed at social media, and self-blended pseudo-fakes.

Social platforms re-encode, rescale and filter what people upload, so the model must not rely on pristine
pixels: JPEG re-compression (quality 30-95), down- and up-scaling, blur, edge-preserving smoothing (what beauty
filters do to skin; without it, smooth-skinned real portraits drew high fake scores), noise, colour jitter, flips
and random resized crops. Self-blended images (Shiohara & Yamasaki, CVPR 2022) turn a real face into a pseudo-fake
by blending a colour- and geometry-jittered copy of it back into itself inside a soft face-shaped mask (the whole
face, or any combination of the eyes, nose and mouth, like the composited parts in the CIPLab data): the model
learns blending boundaries and colour mismatch from real faces alone, which generalises to manipulation methods it
never saw.
Cross-blended images (after Face X-ray, Li et al., CVPR 2020) do the same with the face or face part of another
real person, aligned on the five landmarks and colour-matched: what a face swap or a pasted-in part leaves behind.

All functions take and return uint8 RGB arrays; parameters are drawn once per sequence so that the frames of one
video stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Where the five landmarks sit in a typical crop (fractions of the side), for crops without detected landmarks.
DEFAULT_LANDMARKS = np.array([[0.36, 0.42], [0.64, 0.42], [0.5, 0.56], [0.4, 0.7], [0.6, 0.7]], dtype=np.float32)


@dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.7, 1.0)
    flip: float = 0.5
    color: float = 0.5
    rescale: float = 0.3
    blur: float = 0.15
    smooth: float = 0.2  # edge-preserving skin smoothing, as beauty filters do to real faces before upload
    noise: float = 0.15
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 95)

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(crop_scale=(1.0, 1.0), flip=0.0, color=0.0, rescale=0.0, blur=0.0, smooth=0.0, noise=0.0, jpeg=0.0)


def augment_sequence(frames: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Apply one draw of the augmentations to every frame of a (T, S, S, 3) sequence."""
    size = frames.shape[1]
    # random resized crop (square-ish), shared by the frames
    area = rng.uniform(*config.crop_scale)
    ratio = np.exp(rng.uniform(np.log(0.9), np.log(1.1))) if config.crop_scale[0] < 1 else 1.0
    w = int(round(size * np.sqrt(area * ratio)))
    h = int(round(size * np.sqrt(area / ratio)))
    w, h = min(w, size), min(h, size)
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    flip = rng.random() < config.flip
    color = _color_params(rng) if rng.random() < config.color else None
    rescale = rng.uniform(0.35, 0.9) if rng.random() < config.rescale else None
    interpolation = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][int(rng.integers(3))]
    blur = rng.uniform(0.3, 1.3) if rng.random() < config.blur else None
    # bilateral filter: colour sigma, neighbourhood diameter (px at 224) and how much of it is mixed in
    smooth = (rng.uniform(20, 60), int(rng.choice([5, 7, 9])), rng.uniform(0.6, 1.0)) if rng.random() < config.smooth else None
    noise = rng.uniform(2.0, 8.0) if rng.random() < config.noise else None
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)) if rng.random() < config.jpeg else None

    out = []
    for frame in frames:
        img = frame[y0 : y0 + h, x0 : x0 + w]
        if (w, h) != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        if flip:
            img = img[:, ::-1]
        if color is not None:
            img = _apply_color(img, *color)
        if smooth is not None:
            sigma_colour, diameter, amount = smooth
            diameter = max(3, round(diameter * size / 224)) | 1
            filtered = cv2.bilateralFilter(np.ascontiguousarray(img), diameter, sigma_colour, diameter)
            img = cv2.addWeighted(filtered, amount, img, 1 - amount, 0)
        if rescale is not None:
            small = max(8, int(size * rescale))
            img = cv2.resize(
                cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size), interpolation=interpolation
            )
        if blur is not None:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        if noise is not None:
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        if quality is not None:
            img = jpeg(img, quality)
        out.append(np.ascontiguousarray(img))
    return np.stack(out)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _color_params(rng: np.random.Generator) -> tuple[float, float, float]:
    return rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.2)


def _apply_color(img: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    x = img.astype(np.float32) * brightness
    mean = x.mean()
    x = (x - mean) * contrast + mean
    gray = x.mean(axis=2, keepdims=True)
    x = (x - gray) * saturation + gray
    return np.clip(x, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- pseudo-fakes


def face_mask(landmarks: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft (float32, 0-1) mask of the whole face or of face parts, with randomly deformed outlines.

    Parts are what retouching and part swaps edit: any combination of the two eyes, the nose and the mouth (as in
    manually composited fakes, where one to four parts come from other photos), both eyes at once, or the lower face.
    """
    points = landmarks if landmarks is not None else DEFAULT_LANDMARKS * size
    right_eye, left_eye, nose, mouth_r, mouth_l = points
    eyes = (right_eye + left_eye) / 2
    mouth = (mouth_r + mouth_l) / 2
    d = max(float(np.linalg.norm(left_eye - right_eye)), size * 0.1)
    angle = float(np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])))
    parts = {
        "right_eye": (right_eye, (0.38 * d, 0.26 * d)),
        "left_eye": (left_eye, (0.38 * d, 0.26 * d)),
        "nose": (nose - [0, 0.1 * d], (0.35 * d, 0.55 * d)),
        "mouth": (mouth, (0.7 * d, 0.35 * d)),
    }
    region = rng.choice(["face", "face", "face", "parts", "parts", "parts", "eyes", "lower"])
    if region == "face":
        shapes = [((nose + (eyes + mouth) / 2) / 2, (1.05 * d, 1.45 * d))]
    elif region == "eyes":
        shapes = [(eyes, (1.0 * d, 0.38 * d))]
    elif region == "parts":  # a non-empty subset of the four parts, each part in with probability one half
        chosen = [name for name in parts if rng.random() < 0.5] or [str(rng.choice(list(parts)))]
        shapes = [parts[name] for name in chosen]
    else:  # lower face: nose to chin
        shapes = [((nose + mouth) / 2 + [0, 0.25 * d], (0.95 * d, 0.8 * d))]
    mask = np.zeros((size, size), dtype=np.float32)
    rad = np.radians(angle)
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    largest = 0.0
    for center, axes in shapes:
        axes = np.array(axes) * rng.uniform(0.8, 1.2, 2)
        largest = max(largest, float(max(axes)))
        # an outline with smooth random bumps rather than a perfect ellipse
        bumps = 1 + sum(rng.uniform(-0.08, 0.08) * np.sin(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        ex, ey = axes[0] * np.cos(t) * bumps, axes[1] * np.sin(t) * bumps
        xs = center[0] + ex * np.cos(rad) - ey * np.sin(rad)
        ys = center[1] + ex * np.sin(rad) + ey * np.cos(rad)
        cv2.fillPoly(mask, [np.stack([xs, ys], axis=1).round().astype(np.int32)], 1.0)
    sigma = max(1.0, float(rng.uniform(0.03, 0.12)) * largest)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return mask / max(float(mask.max()), 1e-6)


def self_blend(frames: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Pseudo-fakes: blend a jittered copy of each frame into itself (one draw of parameters per sequence)."""
    size = frames.shape[1]
    shift = rng.uniform(-12, 12, 3).astype(np.float32)
    gain = rng.uniform(0.9, 1.1)
    scale = rng.uniform(0.95, 1.05, 2)
    offset = rng.uniform(-0.03, 0.03, 2) * size
    soften = rng.uniform(0.4, 1.2) if rng.random() < 0.5 else None
    sharpen = rng.uniform(0.3, 1.0) if soften is None and rng.random() < 0.5 else None
    ratio = float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
    mask_seed = int(rng.integers(1 << 31))
    matrix = np.array(
        [[scale[0], 0, (1 - scale[0]) * size / 2 + offset[0]], [0, scale[1], (1 - scale[1]) * size / 2 + offset[1]]],
        dtype=np.float32,
    )
    out = []
    for i, frame in enumerate(frames):
        source = np.clip(frame.astype(np.float32) * gain + shift, 0, 255)
        if soften is not None:
            source = cv2.GaussianBlur(source, (0, 0), soften)
        if sharpen is not None:
            source = cv2.addWeighted(source, 1 + sharpen, cv2.GaussianBlur(source, (0, 0), 1.5), -sharpen, 0)
        source = cv2.warpAffine(source, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
        marks = landmarks[i] if landmarks is not None else None
        mask = face_mask(marks, size, np.random.default_rng(mask_seed))[..., None] * ratio
        out.append(np.clip(source * mask + frame.astype(np.float32) * (1 - mask), 0, 255).astype(np.uint8))
    return np.stack(out)


def cross_blend(
    frames: np.ndarray,
    landmarks: np.ndarray | None,
    donor: np.ndarray,
    donor_landmarks: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pseudo-fakes from two real people: the donor face (one crop) is aligned on each frame's landmarks,
    colour-matched inside the mask (most of the time) and blended into the frame inside a face or face-part mask."""
    size = frames.shape[1]
    source_points = donor_landmarks if donor_landmarks is not None else DEFAULT_LANDMARKS * donor.shape[0]
    match_colour = rng.random() < 0.8
    ratio = float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))
    mask_seed = int(rng.integers(1 << 31))
    out = []
    for i, frame in enumerate(frames):
        target_points = landmarks[i] if landmarks is not None else DEFAULT_LANDMARKS * size
        matrix, _ = cv2.estimateAffinePartial2D(source_points.astype(np.float32), target_points.astype(np.float32))
        if matrix is None:  # degenerate landmarks: paste unaligned
            matrix = np.array([[size / donor.shape[1], 0, 0], [0, size / donor.shape[0], 0]], dtype=np.float32)
        source = cv2.warpAffine(donor.astype(np.float32), matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
        mask = face_mask(target_points, size, np.random.default_rng(mask_seed))
        target = frame.astype(np.float32)
        if match_colour:
            inside = mask > 0.5
            if inside.sum() > 16:
                src_mean, src_std = source[inside].mean(0), source[inside].std(0) + 1e-3
                dst_mean, dst_std = target[inside].mean(0), target[inside].std(0) + 1e-3
                source = (source - src_mean) / src_std * dst_std + dst_mean
        weight = mask[..., None] * ratio
        out.append(np.clip(source * weight + target * (1 - weight), 0, 255).astype(np.uint8))
    return np.stack(out)
