"""The Report: what every shell returns for one analysed file or URL (versioned JSON, see DESIGN.md).

Keep `SCHEMA_VERSION` stable: the browser extension and stored history read these keys. Add keys freely
(minor version), never rename or remove one without a major version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# 1.1: `unfamiliar` on the Report and on each track (a face unlike the faces the model learned from, see
# detector/familiarity.py; a 1.0 Report reads as if no face were unfamiliar), and `provenance` (Content
# Credentials and IPTC source type, detector/provenance.py).
SCHEMA_VERSION = "1.1"
VERDICTS = ("real", "fake", "uncertain", "no_face")
# The stages `progress(stage, done, total)` reports, in order: fetching a URL, decoding key frames, finding faces,
# running the model. Shells map them onto their own progress bars (and may add their own, e.g. "render").
PROGRESS_STAGES = ("fetch", "decode", "faces", "model")


@dataclass
class FaceResult:
    track: int
    box: list[float]  # x, y, width, height in pixels of the upright frame
    score: float  # face detector confidence
    fake_probability: float
    whole_frame: bool = False


@dataclass
class FrameResult:
    index: int
    timestamp_s: float
    fake_probability: float | None  # the most suspicious face in this frame; None when no face was analysed
    smoothed_probability: float | None
    faces: list[FaceResult] = field(default_factory=list)


@dataclass
class TrackResult:
    id: int
    frames: int
    fake_probability: float  # calibrated, whole track (LSTM + per-frame heads)
    mean_box: list[float]
    unfamiliar: bool = False  # the face is unlike the faces the model learned from: its score is less reliable


@dataclass
class C2paClaim:
    """The active manifest of a file's C2PA Content Credentials (detector/provenance.py reads it)."""

    present: bool
    valid: bool  # the manifest is intact and its signature verifies
    trusted: bool  # ...and the signing certificate chains to a configured trust anchor
    signer: str | None  # the certificate's organisation (else common name); None when unreadable
    claim_generator: str | None  # the software that wrote the manifest, with its version
    actions: list[dict[str, Any]]  # {action, software_agent, digital_source_type} per c2pa action
    digital_source_type: str | None  # the IPTC source type the actions state (an AI one first)
    validation_codes: list[str]  # what did not verify, e.g. signingCredential.untrusted; empty when all did


@dataclass
class Provenance:
    """What the file says about its own origin; never changes the verdict (README: The Report)."""

    c2pa: C2paClaim | None
    iptc_digital_source_type: str | None  # from the file's XMP, unsigned
    ai_generated: bool | None  # True: a claim says a trained algorithm made it; False: a valid claim says a camera

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        claim = data.get("c2pa")
        return cls(**{**data, "c2pa": C2paClaim(**claim) if claim else None})


@dataclass
class Report:
    source: str
    verdict: str
    fake_probability: float | None
    confidence: float | None
    threshold: float
    uncertain_band: list[float]
    media: dict[str, Any]
    frames: list[FrameResult]
    tracks: list[TrackResult]
    model: dict[str, Any]
    timings_ms: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    unfamiliar: bool = False  # a face track is unfamiliar: the verdict is then never "real" or "fake"
    provenance: Provenance | None = None  # None only in reports stored before schema 1.1
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A Report from its JSON form (a stored report.json): the inverse of `to_dict`."""
        frames = [
            FrameResult(**{**f, "faces": [FaceResult(**face) for face in f.get("faces", [])]}) for f in data["frames"]
        ]
        tracks = [TrackResult(**t) for t in data["tracks"]]
        provenance = Provenance.from_dict(data["provenance"]) if data.get("provenance") else None
        return cls(**{**data, "frames": frames, "tracks": tracks, "provenance": provenance})
