"""Memory of media judged, its pure parts: 64-bit frame fingerprints found again within seven flipped bits through
the multi-index probes, the distance of two media, the "seen before" line, flat frames left out. The real server
recognising re-encoded copies: tests/integration/test_memory.py."""

from __future__ import annotations

import random

import numpy as np

from server.memory import BANDS, band_probes, bands, distance, hamming, seen_before, to_signed, to_unsigned


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
    entries = [{"verdict": "fake", "times_seen": 2, "first_seen": "2026-12-01T10:00:00.000Z"}]
    assert seen_before(entries) == "Seen before: 2 times since 2026-12-01, earlier verdict fake"


def test_flat_frames_are_not_fingerprinted():
    from server.memory import frame_fingerprints

    black = np.zeros((120, 160, 3), dtype=np.uint8)
    noise = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rows = frame_fingerprints([black, noise])
    assert [(position, variant) for position, variant, _ in rows] == [(1, 0), (1, 1)]
