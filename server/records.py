"""`AnalysisRecord`: an analysis as the history stores it (a row of the analyses table), typed where the service
layer hands it to the HTTP layer. The Report itself is stored apart (report.json in the artefact store)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AnalysisRecord:
    id: str
    created_at: str
    source: str  # as shown: the URL with credentials redacted, or the upload's file name
    source_type: str  # url | upload
    model: str  # the model name asked for
    frames: int  # key frames asked for; 0: the checkpoint's default
    verdict: str
    fake_probability: float | None = None
    confidence: float | None = None
    media_kind: str | None = None
    duration_s: float | None = None
    model_id: str | None = None
    model_revision: str | None = None
    url_key: str | None = None  # the normalised URL's digest, for the cache
    content_sha256: str | None = None
    fetch_json: str | None = None
    artefacts_json: str = "[]"
    client: str | None = None
    job_id: str | None = None  # None for a copy made for a cache hit

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AnalysisRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in names})

    @property
    def fetch(self) -> dict | None:
        """What the fetch found (final URL, title...), for a URL."""
        return json.loads(self.fetch_json) if self.fetch_json else None

    @property
    def artefacts(self) -> list[dict]:
        """The stored pictures (name, kind, position)."""
        return json.loads(self.artefacts_json or "[]")
