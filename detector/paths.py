"""Where things live: the repository, the embedded default checkpoint, and the shared third-party data.

Third-party data (face images, media, detector model files) is never part of the repository; it is read from
`$DEEPFAKE_SHARED_DIR`, by default the `shared` folder beside the checkout (`../shared`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT_DIR = REPO_ROOT / "model_hub" / "default"
# Checkpoints that ship in the repository, by name. No CLIP-backed "accurate" checkpoint ships: on the cross-source
# protocol the CLIP view did not beat the MobileNetV3-LSTM on our data (docs/cross-source.md); one trained with
# `python -m detector train-clip` loads from its folder or Hub id, alone or combined (`default+FOLDER`).
EMBEDDED_CHECKPOINTS = {"default": DEFAULT_CHECKPOINT_DIR}


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

