"""Pick the frames of a video worth analysing: spread over the clip, preferring frames after large changes.

The clip is cut into N equal segments. In each segment a few candidate frames (about `candidate_rate` per
second, as the original system's 4 frames per second) are decoded at low cost, each scored by its mean absolute
difference to the previously kept key frame, and the candidate that changed most is kept. Only the winners are
converted to full-resolution RGB; everything streams, so memory stays at a few frames whatever the clip length.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .media import DecodedFrame, VideoMedia

# Decoding this many frames is cheap (a few tenths of a second at 720p on 2 cores): below it the regular plan,
# one candidate group in every segment, is kept whatever the key frames.
CHEAP_DECODE_FRAMES = 150
# The plan around key frames takes at most this many consecutive frames at each key frame, and is used only
# while no stretch of the clip without an analysed frame is longer than MAX_GAP_SEGMENTS segments.
MAX_FRAMES_PER_KEYFRAME = 2
MAX_GAP_SEGMENTS = 2.5


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
    - Unless that still means decoding far more than we keep while the key frames are merely sparse (fewer
      than one per segment, but at least one per 2 kept frames and none far from the next): then each key frame
      and the frame right after it (`plan_around_keyframes`), when `decoding_cost` finds that plan cheaper by a
      wide margin.
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
    skip = "NONREF" if total > 4 * candidates else "DEFAULT"
    if len(segments) == n and keyframes:
        anchored = plan_around_keyframes(keyframes, n, video.fps, info.duration_s)
        if anchored is not None:
            regular_cost = decoding_cost([t for times in segments for t in times], keyframes, video.fps)
            if skip == "NONREF":
                regular_cost /= 2
            anchored_cost = decoding_cost([t for times in anchored for t in times], keyframes, video.fps)
            if regular_cost > max(4 * anchored_cost, CHEAP_DECODE_FRAMES):
                return anchored, "DEFAULT"
    return segments, skip


def plan_around_keyframes(keyframes: list[float], n: int, fps: float, duration_s: float) -> list[list[float]] | None:
    """Each key frame and the frame right after it, `n` frames in all; None when the key frames are too few,
    bunched together, or too close for runs of consecutive frames.

    For clips whose key frames are too sparse for one per segment (x264's default is one every 250 frames),
    reaching the regular candidates means decoding most of the stream. A key frame decodes on its own and the
    frame just after it costs one or two more, so this plan is an order of magnitude cheaper; it still
    spans the clip (key frames are spread over it and sit at scene cuts) and gives the LSTM short runs of
    consecutive frames."""
    count = len(keyframes)
    if count == 0 or count >= n or -(-n // count) > MAX_FRAMES_PER_KEYFRAME:
        return None
    bounds = [0.0, *keyframes, duration_s]
    if max(b - a for a, b in zip(bounds, bounds[1:])) > MAX_GAP_SEGMENTS * duration_s / n:
        return None  # key frames bunched together: the plan would leave part of the clip unseen
    plan = []
    for i, start in enumerate(keyframes):
        following = n // count + (1 if i < n % count else 0)
        end = keyframes[i + 1] if i + 1 < count else duration_s
        times = [start + j / fps for j in range(following)]
        if times[-1] >= end - 0.5 / fps:
            return None  # key frames too close together for consecutive runs: not this plan
        plan.extend([t] for t in times)
    return plan


def decoding_cost(targets: list[float], keyframes: list[float], fps: float) -> float:
    """Frames the decoder works through to reach `targets` in order, seeking to the key frame before a target
    whenever one lies ahead of the current position (as `VideoMedia.frames_at` does)."""
    tolerance = 0.5 / fps
    position, cost = -math.inf, 0.0
    for target in targets:
        before = bisect.bisect_right(keyframes, target + tolerance) - 1
        start = keyframes[before] if before >= 0 else 0.0
        if start > position + tolerance:
            cost += (target - start) * fps + 1
        else:
            cost += max(0.0, (target - position) * fps)
        position = target
    return cost


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
    max_rgb = video.limits.rgb_pixels(len(segments))  # the analysis's memory bound, shared by its frames

    def close_segment() -> None:
        nonlocal best, last_thumb
        if best is None:
            return
        change, decoded, thumb = best
        kept.append(KeyFrame(decoded.index, decoded.timestamp_s, video.to_rgb(decoded.frame, max_rgb), round(change, 4)))
        last_thumb, best = thumb, None
        if progress:
            progress(len(kept), len(segments))

    for segment, decoded in zip(owner, video.frames_at(targets, skip=skip)):
        if segment != current:
            close_segment()
            current = segment
        thumb = video.thumbnail_gray(decoded).astype(np.int16)
        change = 0.0 if last_thumb is None else float(np.abs(thumb - last_thumb).mean())
        if best is None or change > best[0]:
            best = (change, decoded, thumb)
    close_segment()
    return kept
