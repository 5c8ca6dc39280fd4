"""Memory of media judged, its pure parts: 64-bit frame fingerprints found again within seven flipped bits through
the multi-index probes, the distance of two media, the "seen before" line, flat frames left out, and the close-up
guard: aligned faces of different people that pass the 64-bit test told apart by their fine hashes, while a
re-encoded, rescaled or cropped copy of one still matches. The real server recognising re-encoded copies:
tests/integration/test_memory.py; the demo's "Seen before": tests/integration/test_gradio_memory.py."""

from __future__ import annotations

import random

import numpy as np

from detector.memory import (
    BANDS,
    MAX_MATCHES,
    Candidate,
    Match,
    band_probes,
    bands,
    distance,
    hamming,
    matches,
    seen_before,
    similarity,
    to_signed,
    to_unsigned,
)


def test_multi_index_probes_find_every_hash_within_seven_bits():
    rng = random.Random(7)
    for _ in range(200):
        stored = rng.getrandbits(64)
        flips = rng.sample(range(64), rng.randint(0, 7))
        query = stored
        for bit in flips:
            query ^= 1 << bit
        probes = band_probes([query])
        assert any(band in probes[n] for n, band in enumerate(bands(stored))), flips
        assert to_unsigned(to_signed(stored)) == stored and -(2**63) <= to_signed(stored) < 2**63
    far = band_probes([0])
    assert not any(band in far[n] for n, band in enumerate(bands(0xFFFF_FFFF_FFFF_FFFF)))
    assert len(far) == BANDS and all(len(p) == 17 for p in far)


def test_scoring_uses_the_shorter_side_and_counts_unseen_frames_as_far():
    assert distance([[0b1011]], [0b1011, 1 << 40]) == 0.0  # a screenshot: its one frame decides
    assert distance([[0], [(1 << 40) - 1]], [0], stored_frames=2) == (0 + 32) / 2  # far (40 bits) counts as unseen, 32
    assert distance([[5]], []) == 32.0
    assert distance([[(1 << 20) - 1, 0b111]], [0]) == 3.0  # a frame is as near as the nearer of its whole and its centre
    assert hamming(0b1011, 0b0001) == 2
    assert seen_before([]) is None
    entries = [Match(None, "fake", None, 0.9, "2026-12-01T10:00:00.000Z", 2), Match("a1", "real", 0.1, 0.8, "2026-12-02T09:00:00.000Z", 1)]
    assert seen_before(entries) == "Seen before: 3 times since 2026-12-01, earlier verdict fake"


def test_flat_frames_are_not_fingerprinted():
    from detector.memory import frame_fingerprints

    black = np.zeros((120, 160, 3), dtype=np.uint8)
    noise = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rows = frame_fingerprints([black, noise])
    assert [(row.position, row.variant) for row in rows] == [(1, 0), (1, 1)]
    assert all(row.fine is None for row in rows)  # no faces known: no close-up


def face_like(seed: int, size: int = 200) -> np.ndarray:
    """A synthetic aligned "face": the same coarse layout for every seed (a bright oval, two dark eyes, a mouth) under
    seed-dependent fine detail, as aligned face pictures of different people are."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = 90 + 110 * (((x - 0.5) / 0.32) ** 2 + ((y - 0.5) / 0.42) ** 2 < 1)
    for cx in (0.38, 0.62):
        image = image - 70 * ((x - cx) ** 2 + (y - 0.42) ** 2 < 0.003)
    image = image - 60 * ((abs(x - 0.5) < 0.1) & (abs(y - 0.68) < 0.02))
    # detail between what the 64-bit hash sees (up to 4 cycles across) and what the fine hash sees (up to 8)
    detail = sum(
        rng.normal(0, 12) * np.cos(2 * np.pi * (fx * x + rng.random())) * np.cos(2 * np.pi * (fy * y + rng.random()))
        for fx in range(5, 8)
        for fy in range(5, 8)
    )
    grey = np.clip(image + detail, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_the_close_up_guard_tells_apart_faces_the_coarse_hash_confuses():
    import cv2

    from detector.memory import FINE_MATCH_DISTANCE, close_analyses, frame_fingerprints

    def stored(image, share):
        return frame_fingerprints([image], [share])

    first = face_like(1)
    copies = {
        "half": cv2.resize(first, (100, 100), interpolation=cv2.INTER_AREA),
        "jpeg": cv2.imdecode(cv2.imencode(".jpg", first, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_UNCHANGED),
        "crop": first[10:190, 10:190],
    }
    others = [face_like(seed) for seed in range(2, 12)]
    original = stored(first, 0.3)
    assert all(row.fine is not None for row in original)  # a close-up: fine hashes stored

    def found(query, guard=True):
        candidates = [("original", row) for row in original]
        return close_analyses(query, candidates, lambda ids: {i: 1 for i in ids}, guard=guard)

    for name, copy in copies.items():
        assert "original" in found(stored(copy, 0.3)), name
    confused = [other for other in others if found(stored(other, 0.3), guard=False)]
    assert confused, "the synthetic faces should share their coarse layout"  # else this test proves nothing
    assert not any(found(stored(other, 0.3)) for other in confused)
    # frames that are not close-ups carry no fine hash and are judged by the 64-bit hashes alone
    assert found(stored(confused[0], 0.01)) == found(stored(confused[0], 0.01), guard=False) != {}
    assert FINE_MATCH_DISTANCE < 256 // 4


def test_matches_name_own_analyses_and_group_other_keys_by_verdict():
    candidates = [
        Candidate("mine-1", "key:me", "2026-12-02T10:00:00.000Z", "fake", 0.91, 2.0),
        Candidate("mine-2", "key:me", "2026-12-01T10:00:00.000Z", "real", 0.05, 6.0),
        Candidate("theirs-1", "key:other", "2026-11-30T10:00:00.000Z", "fake", 0.97, 4.0),
        Candidate("theirs-2", "key:third", "2026-11-29T10:00:00.000Z", "fake", 0.88, 1.0),
    ]
    found = matches(candidates, "key:me")
    assert found == [
        Match(None, "fake", None, similarity(1.0), "2026-11-29T10:00:00.000Z", 2),  # other keys: verdict, first time, count
        Match("mine-1", "fake", 0.91, similarity(2.0), "2026-12-02T10:00:00.000Z", 1),
        Match("mine-2", "real", 0.05, similarity(6.0), "2026-12-01T10:00:00.000Z", 1),
    ]
    assert "theirs" not in repr(found) and "key:" not in repr(found)
    assert [m.analysis_id for m in matches(candidates, None)] == ["theirs-2", "mine-1", "theirs-1", "mine-2"]  # no keys
    many = [Candidate(f"a{n}", None, f"2026-12-01T10:00:{n:02d}.000Z", "real", 0.1, 3.0) for n in range(MAX_MATCHES + 5)]
    assert len(matches(many, None)) == MAX_MATCHES and matches(many, None)[0].analysis_id == "a0"  # ties: oldest first
