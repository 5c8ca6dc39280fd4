"""Memory of media judged, its pure part: perceptual fingerprints of an analysis's key frames, the multi-index probes
that find stored ones near them, the scoring of earlier analyses into matches, and the "seen before" line. Every
shell's store (the server's database, server/memory.py; the demo's SQLite file, gradio_demo/memory.py) keeps the
rows this module makes and hands back the candidates its probes find.

Each informative key frame gets a 64-bit pHash of the whole frame and of its central 90 % (a screenshot that lost its
edges still lands near it). A frame that is a face close-up (the largest face found covers `CLOSE_UP_SHARE` of it)
also gets a 256-bit "fine" hash (the 16×16 lowest DCT frequencies), whole and centre: aligned faces of different
people share the coarse layout a 64-bit pHash sees (3.1×10⁻⁴ false matches per pair), and the fine hash tells them
apart while staying put under re-encoding and rescaling (docs/server.md "Memory": the rates of `python -m bench.memory`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .report import PROBABILITY, VERDICTS, schema_keywords

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

# The close-up guard. A face covering this share of a frame makes it a close-up (aligned face pictures: 13 % and more
# of the frame at the 1st percentile; a FaceForensics++ frame: a few %).
CLOSE_UP_SHARE = 0.10
FINE_SIDE = 16  # the fine hash: the FINE_SIDE² lowest DCT frequencies of a 64×64 grey frame
FINE_BITS = FINE_SIDE * FINE_SIDE
# Two close-ups are the same picture when their nearest fine hashes differ in at most this many of 256 bits
# (measured on 2,000 aligned faces: JPEG q30-q90, rescaling and 90 % crops 0-8 bits; the pairs of different files
# that pass the 64-bit test 42 bits and more, but one photograph stored twice under two names, 8 and 12).
FINE_MATCH_DISTANCE = 24

WHOLE, CENTRED = 0, 1  # the variants stored per frame


@dataclass(frozen=True)
class Fingerprint:
    """One stored hash: the key frame it was taken from, whole or centre, its 64-bit pHash (unsigned) and, for a
    face close-up, its 256-bit fine hash."""

    position: int
    variant: int
    hash: int
    fine: int | None = None


def phash(image: np.ndarray, side: int = 8, size: int = 32) -> int:
    """The perceptual hash of an RGB or grey image (pHash: grey, size×size by area averaging, 2-D DCT, the side×side
    lowest frequencies compared with their median): 64 bits by default, `side`² bits in general; bit n is the n-th
    frequency in row order."""
    import cv2

    grey = _grey(image)
    small = cv2.resize(grey.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:side, :side].flatten()
    bits = low > np.median(low)
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def fine_hash(image: np.ndarray) -> int:
    return phash(image, FINE_SIDE, 4 * FINE_SIDE)


def frame_fingerprints(images: Iterable[np.ndarray], face_shares: Sequence[float] | None = None) -> list[Fingerprint]:
    """What one analysis stores: each informative key frame whole and its centre, with fine hashes for the frames
    whose `face_shares` (the largest face's share of the frame, per frame; none: no faces known) make close-ups."""
    import cv2

    rows = []
    for position, image in enumerate(images):
        # grey once per frame (the centre's grey is the grey's centre): the hashes below cost ~1 ms a frame
        grey = _grey(image)
        if float(cv2.meanStdDev(grey)[1][0, 0]) < MIN_CONTRAST:
            continue
        height, width = grey.shape[:2]
        dy, dx = int(height * (1 - CENTRE) / 2), int(width * (1 - CENTRE) / 2)
        centre = grey[dy : height - dy, dx : width - dx]
        close_up = face_shares is not None and position < len(face_shares) and face_shares[position] >= CLOSE_UP_SHARE
        rows.append(Fingerprint(position, WHOLE, phash(grey), fine_hash(grey) if close_up else None))
        rows.append(Fingerprint(position, CENTRED, phash(centre), fine_hash(centre) if close_up else None))
    return rows


def _grey(image: np.ndarray) -> np.ndarray:
    """An RGB image as 8-bit grey (a grey one as it is)."""
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def face_shares(report, images: Sequence[np.ndarray]) -> list[float]:
    """Per key frame, the share of it the largest detected face covers (0 without one; a whole-frame stand-in for a
    face that was not found does not count), from a Report's frames and the key frames they were found in."""
    shares = []
    for frame, image in zip(report.frames, images):
        height, width = image.shape[:2]
        areas = [face.box[2] * face.box[3] for face in frame.faces if not face.whole_frame]
        shares.append(max(areas, default=0.0) / max(1, width * height))
    return shares


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


def fine_text(value: int | None) -> str | None:
    """A fine hash as the 64 hex digits a text column holds."""
    return None if value is None else f"{value:0{FINE_BITS // 4}x}"


def fine_value(text: str | None) -> int | None:
    return None if not text else int(text, 16)


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


def close_ups_agree(query_fine: Sequence[int], stored_fine: Sequence[int]) -> bool:
    """The close-up guard: when both analyses have face close-ups, their nearest fine hashes must be near too. When
    either has none (no close-up there, or stored before fine hashes existed) the 64-bit score decides alone."""
    if not query_fine or not stored_fine:
        return True
    return min(hamming(q, s) for q in query_fine for s in stored_fine) <= FINE_MATCH_DISTANCE


def close_analyses(
    query: Sequence[Fingerprint],
    candidates: Iterable[tuple[str, Fingerprint]],
    frames_of: Callable[[list[str]], dict[str, int]],
    guard: bool = True,
) -> dict[str, float]:
    """The earlier analyses that are the same media as the fingerprints `query`, with their distances: `candidates`
    are (analysis id, fingerprint) pairs a store found with `band_probes` of the query's hashes; `frames_of` says how
    many key frames each of some analyses has fingerprints of. `guard` False skips the close-up guard (the bench
    measures both)."""
    frames: dict[int, list[int]] = defaultdict(list)
    for row in query:
        frames[row.position].append(row.hash)
    query_frames = list(frames.values())
    flat = [row.hash for row in query]
    query_fine = [row.fine for row in query if row.fine is not None]
    found: dict[str, list[Fingerprint]] = defaultdict(list)
    for analysis_id, row in candidates:
        found[analysis_id].append(row)
    # the nearest single frame bounds the score from below: most candidates of the probes go here, unread
    near = {o: rows for o, rows in found.items() if min(hamming(q, s.hash) for q in flat for s in rows) <= MATCH_DISTANCE}
    counts = frames_of(list(near)) if near else {}
    close = {}
    for other, rows in near.items():
        mean = distance(query_frames, [row.hash for row in rows], counts.get(other))
        if mean > MATCH_DISTANCE:
            continue
        if guard and not close_ups_agree(query_fine, [row.fine for row in rows if row.fine is not None]):
            continue
        close[other] = mean
    return close


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


@dataclass(frozen=True)
class Match:
    """An earlier analysis of the same media, as answers show it (`matches`). Another API key's analyses are grouped
    by verdict and reveal only verdict, first time and count: `analysis_id` and `fake_probability` are null."""

    analysis_id: str | None
    verdict: str = field(metadata=schema_keywords(enum=list(VERDICTS)))
    fake_probability: float | None = field(metadata=schema_keywords(**PROBABILITY))
    similarity: float = field(metadata=schema_keywords(**PROBABILITY, description="1 - mean Hamming distance / 64"))
    first_seen: str = field(metadata=schema_keywords(description="when the earliest of them was analysed (UTC)"))
    times_seen: int = field(metadata=schema_keywords(minimum=1))

    def to_dict(self) -> dict:
        return asdict(self)


def matches(candidates: list[Candidate], requester: str | None) -> list[Match]:
    """The answer's `matches`, best first: the requester's own analyses one by one (every analysis when `requester`
    is None: a server without keys, the demo), another key's grouped by verdict with only verdict, first time and
    count."""
    own = [c for c in candidates if requester is None or c.client == requester]
    others: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if requester is not None and candidate.client != requester:
            others[candidate.verdict].append(candidate)
    entries = [Match(c.analysis_id, c.verdict, c.fake_probability, similarity(c.distance), c.created_at, 1) for c in own]
    for verdict, group in others.items():
        first_seen = min(c.created_at for c in group)
        entries.append(Match(None, verdict, None, similarity(min(c.distance for c in group)), first_seen, len(group)))
    entries.sort(key=lambda m: (-m.similarity, m.first_seen))
    return entries[:MAX_MATCHES]


def seen_before(entries: list[Match]) -> str | None:
    """One line for people: "Seen before: 3 times since 2026-12-01, earlier verdict fake"."""
    if not entries:
        return None
    times = sum(m.times_seen for m in entries)
    since = min(m.first_seen for m in entries)[:10]
    return f"Seen before: {times} time{'s' if times != 1 else ''} since {since}, earlier verdict {entries[0].verdict}"
