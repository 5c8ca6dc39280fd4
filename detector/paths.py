"""Where things live: the repository, the embedded default checkpoint, and the shared third-party data.

Third-party data (face images, media, detector model files) is never part of the repository; it is read from
`$DEEPFAKE_SHARED_DIR`, by default the `shared` folder beside the checkout (`../shared`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT_DIR = REPO_ROOT / "model_hub" / "default"
ACCURATE_CHECKPOINT_DIR = REPO_ROOT / "model_hub" / "accurate"
# Checkpoints that ship in the repository, by name: the fast MobileNetV3-LSTM, and the heads of the CLIP-backed
# "accurate" view (`python -m detector train-clip`), which also needs the CLIP image tower (`clip-fetch`, not shipped:
# third-party weights). `default+accurate` combines the two (detector/ensemble.py; docs/cross-source.md says why).
EMBEDDED_CHECKPOINTS = {"default": DEFAULT_CHECKPOINT_DIR, "accurate": ACCURATE_CHECKPOINT_DIR}


def shared_dir() -> Path:
    from .settings import CoreSettings

    return CoreSettings.current().shared_dir or REPO_ROOT.parent / "shared"


def imagenet_backbone_file() -> Path:
    """The ImageNet-pretrained MobileNetV3-Small in torchvision's layout (see shared/models/README.md)."""
    return shared_dir() / "models" / "mobilenet_v3_small_imagenet.safetensors"


def cache_dir(kind: str) -> Path:
    """A folder of this project's cache: `$DEEPFAKE_CACHE_DIR/KIND`, by default ~/.cache/deepfake-checker/KIND
    (kinds: crops, onnx, clip, embeddings)."""
    from .settings import CoreSettings

    configured = CoreSettings.current().cache_dir
    base = configured or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "deepfake-checker"
    return Path(base).expanduser() / kind


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def human_size(n: float) -> str:
    """Bytes for people: 512 bytes, 1.5 kB, 99.5 MB, 1.2 GB (decimal units)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"

