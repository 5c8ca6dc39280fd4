"""Where things live: the repository, the embedded default checkpoint, and the shared third-party data.

Third-party data (face images, media, detector model files) is never part of the repository; it is read from
the `shared_dir` setting (`$DEEPFAKE_SHARED_DIR`), by default the `shared` folder beside the checkout (`../shared`).
A leaf: the functions take the configured folders (`CoreSettings`) as arguments and read no settings themselves.
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


def shared_dir(configured: str | os.PathLike | None = None) -> Path:
    """The third-party data folder: `configured` (the `shared_dir` setting), by default ../shared beside the checkout."""
    return Path(configured).expanduser() if configured else REPO_ROOT.parent / "shared"


def imagenet_backbone_file(shared: str | os.PathLike | None = None) -> Path:
    """The ImageNet-pretrained MobileNetV3-Small in torchvision's layout (see shared/models/README.md), in the shared
    data folder `shared` (default: `shared_dir()`)."""
    return Path(shared or shared_dir()) / "models" / "mobilenet_v3_small_imagenet.safetensors"


def cache_dir(kind: str, configured: str | os.PathLike | None = None) -> Path:
    """A folder of this project's cache: `configured/KIND` (the `cache_dir` setting), by default
    $XDG_CACHE_HOME/deepfake-checker/KIND, i.e. ~/.cache/deepfake-checker/KIND (kinds: crops, onnx, clip, embeddings)."""
    base = configured or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "deepfake-checker"
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

