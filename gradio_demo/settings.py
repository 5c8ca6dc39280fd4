"""The demo's settings: defaults, and the `DEEPFAKE_*` environment variables that change them.

Variable names and limits are the server's (server/config.py) wherever both have the setting, so that one
deployment's environment means the same to both shells; the demo does not import the server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from detector import MediaLimits
from detector.env import parse_bool
from detector.fetching.fetch import FetchLimits
from detector.fetching.urlguard import UrlPolicy


@dataclass(frozen=True)
class DemoSettings:
    model: str = "default"  # preloaded at start-up and selected in the model box
    models: tuple[str, ...] = ()  # further names offered in the model box (Hub ids or checkpoint folders)
    allow_hub_models: bool = True  # visitors may type any Hub id org/name[@revision]
    max_loaded_models: int = 3  # detectors kept in memory; the least recently used is dropped
    face_detector: str | None = None  # None: what the checkpoint's config says
    threads: int = 0  # torch/OpenCV threads; 0: every core
    frames: int = 16  # default of the frames slider
    max_frames: int = 64
    max_links: int = 10
    allow_private_urls: bool = False  # let links reach loopback/private addresses (private deployments, tests)
    trusted_endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)  # tests only
    max_upload_bytes: int = 100 * 1024**2
    max_fetch_bytes: int = 200 * 1024**2
    max_duration_s: float = 600.0
    max_pixels: int = 40_000_000
    fetch_timeout_s: float = 60.0
    examples_dir: Path | None = None  # media files offered as examples (None: see examples.py)
    example_links: tuple[str, ...] = (
        # A public-domain painting (1788) on Wikimedia Commons; Special:FilePath redirects to the original file.
        "https://commons.wikimedia.org/wiki/Special:FilePath/Thomas_Jefferson_by_John_Trumbull_1788.jpg",
    )
    keep_results_s: float = 3600.0  # how long files written for visitors stay on disk

    @property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(allow_private=self.allow_private_urls, trusted_endpoints=self.trusted_endpoints)

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(self.max_fetch_bytes, self.max_duration_s, self.fetch_timeout_s)

    def media_limits(self, max_bytes: int) -> MediaLimits:
        return MediaLimits(max_bytes=max_bytes, max_pixels=self.max_pixels, max_duration_s=self.max_duration_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> DemoSettings:
        """Defaults, then `DEEPFAKE_*` variables of `environ` (default: os.environ), then `overrides`."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        types = {f.name: f.type for f in fields(cls)}
        for suffix, name in ENVIRONMENT.items():
            raw = environ.get(f"DEEPFAKE_{suffix}")
            if raw is None or not raw.strip():  # set but empty: as if unset
                continue
            try:
                values[name] = _convert(raw, types[name])
            except ValueError as exc:
                raise ValueError(f"DEEPFAKE_{suffix}={raw!r}: {exc}") from None
        return cls(**{**values, **overrides})


# Environment variable suffix (after DEEPFAKE_) -> field
ENVIRONMENT = {
    "MODEL": "model",
    "MODELS": "models",
    "ALLOW_HUB_MODELS": "allow_hub_models",
    "MAX_LOADED_MODELS": "max_loaded_models",
    "FACES": "face_detector",
    "THREADS": "threads",
    "FRAMES": "frames",
    "MAX_FRAMES": "max_frames",
    "MAX_LINKS": "max_links",
    "ALLOW_PRIVATE_URLS": "allow_private_urls",
    "MAX_UPLOAD_BYTES": "max_upload_bytes",
    "MAX_FETCH_BYTES": "max_fetch_bytes",
    "MAX_DURATION_S": "max_duration_s",
    "MAX_PIXELS": "max_pixels",
    "FETCH_TIMEOUT_S": "fetch_timeout_s",
    "DEMO_EXAMPLES": "examples_dir",
    "DEMO_EXAMPLE_LINKS": "example_links",
}


def _convert(raw: str, kind: str):
    # Field annotations are strings here (from __future__ import annotations).
    if kind == "bool":
        return parse_bool(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind.startswith("tuple[str"):
        return tuple(part.strip() for part in raw.replace("\n", ",").split(",") if part.strip())
    if kind.startswith("Path"):
        return Path(raw.strip()).expanduser()
    return raw.strip()
