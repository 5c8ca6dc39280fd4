"""Memory of media judged: perceptual fingerprints of every analysis, and the earlier analyses a new one matches.

The same fake circulates re-encoded, rescaled, trimmed and screenshotted. Every analysis stores a 64-bit pHash of
each key frame it analysed (the frames the core already decoded: no extra decoding), and of the
frame's central 90 % so that a screenshot that lost its edges still lands near it. A lookup finds the stored hashes
near each query frame (multi-index hashing in the database, `Database.fingerprint_candidates`) and scores each
earlier analysis by the mean Hamming distance of the query's best-matching frames (docs/server.md "Memory": design,
cost and the rates measured with `python -m bench memory`).

Privacy: matches of the requester's own analyses (or any, on a server without API keys) name the analysis; those of
another key reveal only verdict, time and count, grouped by verdict; a key that opted out is never matched by others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

HASH_BITS = 64
BAND_BITS = 16
BANDS = HASH_BITS // BAND_BITS
CENTRE = 0.9  # the central share of each side also hashed (a screenshot crop keeps about this much)
# Frames this flat (grey-level standard deviation) say nothing: a black or white frame hashes alike in every video.
MIN_CONTRAST = 4.0
# Scoring: a query frame without a stored hash near it counts as this far (two unrelated pHashes differ in ~32 bits).
UNSEEN_DISTANCE = 32
# The mean distance of the best frames at or under which two analyses are the same media. Measured with
# `python -m bench.memory`: re-encodings, rescaling and trims 0-4 bits, 90 % screenshot crops 10 (one of 13 more),
# different files of the shared media 14 and more. Two pHashes split at their median (32 bits set each) differ in an
# even number of bits.
MATCH_DISTANCE = 10.0
MAX_MATCHES = 10


def phash(image: np.ndarray) -> int:
    """The 64-bit perceptual hash of an RGB or grey image (pHash: grey, 32×32 by area averaging, 2-D DCT, the 8×8
    lowest frequencies compared with their median), with OpenCV, which serving already has."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low)
    return int(sum(1 << n for n, bit in enumerate(bits) if bit))


WHOLE, CENTRED = 0, 1  # the variants stored per frame


def frame_fingerprints(images: Iterable[np.ndarray]) -> list[tuple[int, int, int]]:
    """(position, variant, hash) of what one analysis stores: each informative key frame whole and its centre."""
    rows = []
    for position, image in enumerate(images):
        if _grey_std(image) < MIN_CONTRAST:
            continue
        height, width = image.shape[:2]
        dy, dx = int(height * (1 - CENTRE) / 2), int(width * (1 - CENTRE) / 2)
        rows.append((position, WHOLE, phash(image)))
        rows.append((position, CENTRED, phash(image[dy : height - dy, dx : width - dx])))
    return rows


def _grey_std(image: np.ndarray) -> float:
    return float((image.mean(axis=2) if image.ndim == 3 else image).std())


def bands(value: int) -> tuple[int, ...]:
    """The four 16-bit bands of a 64-bit hash, low band first."""
    mask = (1 << BAND_BITS) - 1
    return tuple((value >> (BAND_BITS * n)) & mask for n in range(BANDS))


def band_probes(values: Iterable[int]) -> list[set[int]]:
    """Per band, the values a lookup probes: each query hash's band and its 16 one-bit neighbours. Every stored hash
    within 7 bits of a query hash shares a band within one bit of it (pigeonhole), so the probes find all of them,
    and most of those up to ~12 bits."""
    probes: list[set[int]] = [set() for _ in range(BANDS)]
    for value in values:
        for n, band in enumerate(bands(value)):
            probes[n].add(band)
            probes[n].update(band ^ (1 << bit) for bit in range(BAND_BITS))
    return probes


def to_signed(value: int) -> int:
    """A 64-bit hash as the signed integer a BIGINT column holds."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def to_unsigned(value: int) -> int:
    return value + (1 << HASH_BITS) if value < 0 else value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def distance(query: Sequence[Sequence[int]], stored: Sequence[int], stored_frames: int | None = None) -> float:
    """How far an earlier analysis is from the query (a list of frames, each its hashes: whole and centre): the mean,
    over the query's k best frames (k: the fewer frames of the two), of each frame's distance to the nearest stored
    hash, capped at `UNSEEN_DISTANCE`. A screenshot (one frame) is thus judged by its one frame, a trimmed copy by the
    frames both share; comparing centres with wholes both ways makes the score symmetric."""
    if not query:
        return float(UNSEEN_DISTANCE)
    best = sorted(min((hamming(q, s) for q in frame for s in stored), default=UNSEEN_DISTANCE) for frame in query)
    k = max(1, min(len(query), stored_frames or len(stored)))
    return float(np.mean([min(d, UNSEEN_DISTANCE) for d in best[:k]]))


def similarity(mean_distance: float) -> float:
    return round(1.0 - mean_distance / HASH_BITS, 4)


@dataclass
class Candidate:
    analysis_id: str
    client: str | None
    created_at: str
    verdict: str
    fake_probability: float | None
    distance: float


def matches(candidates: list[Candidate], requester: str | None) -> list[dict]:
    """The answer's `matches`, best first: the requester's own analyses one by one (every analysis on a server
    without keys, `requester` None), another key's grouped by verdict with only verdict, first time and count."""
    own = [c for c in candidates if requester is None or c.client == requester]
    others: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if requester is not None and candidate.client != requester:
            others[candidate.verdict].append(candidate)
    entries = [
        {
            "analysis_id": c.analysis_id,
            "verdict": c.verdict,
            "fake_probability": c.fake_probability,
            "similarity": similarity(c.distance),
            "first_seen": c.created_at,
            "times_seen": 1,
        }
        for c in own
    ]
    for verdict, group in others.items():
        entries.append(
            {
                "analysis_id": None,
                "verdict": verdict,
                "fake_probability": None,
                "similarity": similarity(min(c.distance for c in group)),
                "first_seen": min(c.created_at for c in group),
                "times_seen": len(group),
            }
        )
    entries.sort(key=lambda e: (-e["similarity"], e["first_seen"]))
    return entries[:MAX_MATCHES]


def seen_before(entries: list[dict]) -> str | None:
    """One line for people: "Seen before: 3 times since 2026-12-01, earlier verdict fake"."""
    if not entries:
        return None
    times = sum(e["times_seen"] for e in entries)
    since = min(e["first_seen"] for e in entries)[:10]
    return f"Seen before: {times} time{'s' if times != 1 else ''} since {since}, earlier verdict {entries[0]['verdict']}"


class Memory:
    """Stores an analysis's fingerprints and finds the earlier analyses that match one (through `Database`)."""

    def __init__(self, db):
        self.db = db

    def remember(self, analysis_id: str, client: str | None, images: Iterable[np.ndarray]) -> None:
        rows = [(position, variant, to_signed(value)) for position, variant, value in frame_fingerprints(images)]
        self.db.insert_fingerprints(analysis_id, client, rows)

    def copy(self, source_id: str, target_id: str, client: str | None) -> None:
        self.db.copy_fingerprints(source_id, target_id, client)

    def matches(self, analysis_id: str, requester: str | None) -> list[dict]:
        """The earlier (or later) analyses of the same media as `analysis_id`, as `requester` may see them."""
        frames_of: dict[int, list[int]] = defaultdict(list)
        for position, value in self.db.fingerprints_of(analysis_id):
            frames_of[position].append(to_unsigned(value))
        query = list(frames_of.values())
        if not query:
            return []
        found: dict[str, list[int]] = defaultdict(list)
        flat = [value for frame in query for value in frame]
        for row in self.db.fingerprint_candidates(band_probes(flat), analysis_id, requester):
            found[row["analysis_id"]].append(to_unsigned(row["hash"]))
        # the nearest single frame bounds the score from below: most candidates of the probes go here, unread
        near = {o: hashes for o, hashes in found.items() if min(hamming(q, s) for q in flat for s in hashes) <= MATCH_DISTANCE}
        frames = self.db.fingerprinted_frames(list(near))
        close = {}
        for other, hashes in near.items():
            mean = distance(query, hashes, frames.get(other))
            if mean <= MATCH_DISTANCE:
                close[other] = mean
        candidates = [
            Candidate(row["id"], row["client"], row["created_at"], row["verdict"], row["fake_probability"], close[row["id"]])
            for row in self.db.analyses_by_id(list(close))
        ]
        return matches(candidates, requester)
