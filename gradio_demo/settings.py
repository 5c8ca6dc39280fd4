"""The demo's settings: `ServingSettings` (the model, the limits and the URL policy, with the server's variables
and defaults, detector/settings.py) and the demo's own fields, each read from `DEEPFAKE_<FIELD>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from detector.settings import ServingSettings, env_field, from_env


@dataclass(frozen=True)
class DemoSettings(ServingSettings):
    allow_hub_models: bool = True  # visitors may type any Hub id org/name[@revision]
    max_loaded_models: int = 3  # detectors kept in memory; the least recently used is dropped
    frames: int = 16  # default of the frames slider
    max_links: int = 10
    examples_dir: Path | None = env_field(None, env="DEMO_EXAMPLES")  # media files offered as examples (examples.py)
    example_links: tuple[str, ...] = env_field(
        # A public-domain painting (1788) on Wikimedia Commons; Special:FilePath redirects to the original file.
        ("https://commons.wikimedia.org/wiki/Special:FilePath/Thomas_Jefferson_by_John_Trumbull_1788.jpg",),
        env="DEMO_EXAMPLE_LINKS",
    )
    keep_results_s: float = env_field(3600.0, env=None)  # how long files written for visitors stay on disk
    # The demo's memory of media judged (gradio_demo/memory.py), a SQLite file; None: <cache_dir>/demo/memory.sqlite
    memory_file: Path | None = env_field(None, env="DEMO_MEMORY_FILE")

    def memory_path(self) -> Path:
        return self.memory_file or self.cache_folder("demo") / "memory.sqlite"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> DemoSettings:
        """Defaults, then `DEEPFAKE_*` variables of `environ` (default: os.environ), then `overrides`."""
        return from_env(cls, environ, **overrides)
