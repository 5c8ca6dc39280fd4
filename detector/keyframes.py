"""Pick the frames of a video worth analysing: spread over the clip, preferring frames after large changes.

The clip is cut into N equal segments. In each segment a few candidate frames (about `candidate_rate` per
second, as the original system's 4 frames per second) are decoded at low cost, each scored by its mean absolute
difference to the previously kept key frame, and the candidate that changed most is kept. Only the winners are
converted to full-resolution RGB; everything streams, so memory stays at a few frames whatever the clip length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .media import DecodedFrame, VideoMedia


@dataclass
class KeyFrame:
    index: int
    timestamp_s: float
    image: np.ndarray  # RGB, upright
    change: float  # mean absolute difference (0-255) to the previous key frame's thumbnail; 0 for the first


def plan_candidates(
    duration_s: float, fps: float, frame_count: int, n: int, candidate_rate: float = 4.0, max_per_segment: int = 4
) -> list[list[float]]:
    """Candidate timestamps grouped into `n` segments (fewer when the clip has fewer frames)."""
    total = max(1, min(frame_count, int(round(duration_s * fps)) or frame_count))
    if total <= n:
        return [[i / fps] for i in range(total)]
    span = total / n  # frames per segment
    segments = []
    for s in range(n):
        start = s * span
        count = int(np.clip(round(span / fps * candidate_rate), 1, max_per_segment))
        count = max(1, min(count, int(span)))
        frames = sorted({int(start + (j + 0.5) * span / count) for j in range(count)})
        segments.append([f / fps for f in frames])
    return segments


def plan_decoding(video: VideoMedia, n: int, candidate_rate: float = 4.0) -> tuple[list[list[float]], str]:
    """Candidates per segment and what the decoder may skip, chosen per clip from its key-frame index.

    - When the index shows a key frame in every segment, the candidates are key frames and only key frames are
      decoded ("NONKEY"): encoders place key frames at scene cuts, which is what we want to look at anyway,
      and a key frame decodes on its own, so this is by far the cheapest plan.
    - Otherwise the regular candidates are decoded; when that means decoding many frames we do not keep,
      frames no other frame refers to are skipped ("NONREF", about half of an H.264 stream), and `frames_at`
      seeks over every stretch that contains a key frame.
    """
    info = video.info
    segments = plan_candidates(info.duration_s, video.fps, info.frame_count, n, candidate_rate)
    keyframes = video.keyframe_times()
    if len(segments) == n and len(keyframes) >= n:
        length = info.duration_s / n
        chosen = []
        for s in range(n):
            inside = [t for t in keyframes if s * length <= t < (s + 1) * length]
            if not inside:
                break
            step = max(1, len(inside) // max_candidates(length, candidate_rate))
            chosen.append(inside[::step][: max_candidates(length, candidate_rate)])
        else:
            return chosen, "NONKEY"
    total = max(1, int(round(info.duration_s * video.fps)))
    candidates = sum(len(times) for times in segments)
    return segments, ("NONREF" if total > 4 * candidates else "DEFAULT")


def max_candidates(segment_s: float, candidate_rate: float, max_per_segment: int = 4) -> int:
    return int(np.clip(round(segment_s * candidate_rate), 1, max_per_segment))


def select_key_frames(
    video: VideoMedia,
    n: int,
    candidate_rate: float = 4.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[KeyFrame]:
    segments, skip = plan_decoding(video, n, candidate_rate)
    owner = [s for s, times in enumerate(segments) for _ in times]
    targets = [t for times in segments for t in times]

    kept: list[KeyFrame] = []
    last_thumb: np.ndarray | None = None
    best: tuple[float, DecodedFrame, np.ndarray] | None = None
    current = 0

    def close_segment() -> None:
        nonlocal best, last_thumb
        if best is None:
            return
        change, decoded, thumb = best
        kept.append(KeyFrame(decoded.index, decoded.timestamp_s, video.to_rgb(decoded.frame), round(change, 4)))
        last_thumb, best = thumb, None
        if progress:
            progress(len(kept), len(segments))

    for segment, decoded in zip(owner, video.frames_at(targets, skip=skip)):
        if segment != current:
            close_segment()
            current = segment
        thumb = decoded.thumbnail_gray().astype(np.int16)
        change = 0.0 if last_thumb is None else float(np.abs(thumb - last_thumb).mean())
        if best is None or change > best[0]:
            best = (change, decoded, thumb)
    close_segment()
    return kept
