"""Examples a visitor can try without their own files, none of them committed to the repository.

The media we test with is third-party (FaceForensics++ and other data sets under $DEEPFAKE_SHARED_DIR) and must not
be published with the code, and a Space has no shared folder. So the examples are, in this order:
1. the media files in `DEEPFAKE_DEMO_EXAMPLES` or, when that is not set, in an `examples/` folder beside
   `detector/` (a Space operator puts media there that they have the rights to: `build_space.py --examples DIR`);
2. otherwise a few files of the shared data when it is present (local runs and development);
3. always one synthetic picture made at start-up, with no face in it: it shows what "no face" means and works
   everywhere, even where no example media was provided.
Example links are text only (a public-domain picture by default, `DEEPFAKE_DEMO_EXAMPLE_LINKS` to change them).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.paths import REPO_ROOT

from .settings import DemoSettings

MEDIA_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".avif", ".mp4", ".mov", ".webm", ".mkv", ".avi", ".ts"}
MAX_EXAMPLES = 8
# From the shared data: a FaceForensics++ manipulated video, a real photo, a manipulated frame.
SHARED_EXAMPLES = (
    "data/media/videos/fake_ffpp_000_003.mp4",
    "data/media/seed/real.jpg",
    "data/media/frames/fake_fake_frame_9.png",
)


def example_files(settings: DemoSettings, work_dir: Path) -> list[Path]:
    folder = settings.examples_dir or (REPO_ROOT / "examples")
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in MEDIA_SUFFIXES) if folder.is_dir() else []
    if not files and settings.examples_dir is None:
        shared = settings.shared_folder()
        files = [shared / name for name in SHARED_EXAMPLES if (shared / name).is_file()]
    return [*files[:MAX_EXAMPLES], synthetic_no_face(work_dir / "synthetic-no-face.png")]


def synthetic_no_face(path: Path) -> Path:
    """A 640×360 picture of shapes on a gradient, made here (so no licence applies), with no face in it."""
    height, width = 360, 640
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    image = (np.array([40, 90, 160]) * (1 - ramp) + np.array([230, 170, 60]) * ramp).astype(np.uint8)
    image = np.ascontiguousarray(np.broadcast_to(image, (height, width, 3)))
    cv2.circle(image, (170, 190), 80, (250, 250, 250), -1)
    cv2.rectangle(image, (330, 110), (520, 270), (30, 30, 30), -1)
    cv2.putText(image, "synthetic example: no face", (40, 330), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path
