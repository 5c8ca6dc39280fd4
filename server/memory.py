"""Memory of media judged, the server's store: the fingerprints of every analysis in the database, and the earlier
analyses a new one matches, as the requester may see them. What a fingerprint is and how candidates are scored is
the core's (detector/memory.py); the lookup is multi-index hashing in the database (`Database.fingerprint_candidates`,
docs/server.md "Memory": design, cost and the rates measured with `python -m bench.memory`).

Privacy: matches of the requester's own analyses (or any, on a server without API keys) name the analysis; those of
another key reveal only verdict, time and count, grouped by verdict; a key that opted out is never matched by others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detector.memory import (
    Candidate,
    Fingerprint,
    Match,
    band_probes,
    close_analyses,
    face_shares,
    fine_value,
    frame_fingerprints,
    matches,
    seen_before,
    to_unsigned,
)

__all__ = ["Memory", "seen_before"]  # pages.py words the report page's "seen before" line with the core's


class Memory:
    """Stores an analysis's fingerprints and finds the earlier analyses that match one (through `Database`)."""

    def __init__(self, db):
        self.db = db

    def remember(self, analysis_id: str, client: str | None, images: Sequence[np.ndarray], report=None) -> None:
        """Fingerprints of the key frames `images`; with the `report` made of them, fine hashes of face close-ups."""
        shares = face_shares(report, images) if report is not None else None
        self.db.insert_fingerprints(analysis_id, client, frame_fingerprints(images, shares))

    def copy(self, source_id: str, target_id: str, client: str | None) -> None:
        self.db.copy_fingerprints(source_id, target_id, client)

    def matches(self, analysis_id: str, requester: str | None, guard: bool = True) -> list[Match]:
        """The earlier (or later) analyses of the same media as `analysis_id`, as `requester` may see them (`guard`
        False: without the close-up guard, for `python -m bench.memory` to measure what it changes)."""
        query = self.db.fingerprints_of(analysis_id)
        if not query:
            return []
        rows = self.db.fingerprint_candidates(band_probes([row.hash for row in query]), analysis_id, requester)
        found = (
            (row["analysis_id"], Fingerprint(row["position"], row["variant"], to_unsigned(row["hash"]), fine_value(row["fine"])))
            for row in rows
        )
        close = close_analyses(query, found, self.db.fingerprinted_frames, guard)
        candidates = [
            Candidate(row["id"], row["client"], row["created_at"], row["verdict"], row["fake_probability"], close[row["id"]])
            for row in self.db.analyses_by_id(list(close))
        ]
        return matches(candidates, requester)
