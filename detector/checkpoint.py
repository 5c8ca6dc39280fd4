"""Save and load checkpoints: a folder with `config.json` and `model.safetensors` (no pickle anywhere).

A model is named by a local folder, `default` (the checkpoint embedded in the repository), or a Hugging Face Hub
id `org/name[@revision]` (downloaded by `detector.hub`). Keys must match the architecture exactly.

Serving needs no PyTorch: a folder whose ONNX export was made from the weights beside it (detector/backends.py)
is served by ONNX Runtime, and the few tensors inference reads directly (the frame head's weights for heatmaps, a
reference sample) come from the safetensors file as NumPy arrays. The PyTorch network (`Checkpoint.model`) is
built on first use: training, export, the torch backend.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from .config import ModelConfig
from .errors import ModelError, ModelFormatError, ModelNotFoundError
from .onnxlayout import read_manifest
from .paths import DEFAULT_CHECKPOINT_DIR, EMBEDDED_CHECKPOINTS, imagenet_backbone_file, sha256_file

if TYPE_CHECKING:
    from .model import MobileNetLSTM

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    config: ModelConfig
    id: str
    revision: str | None
    path: Path | None  # the folder the files were read from; None for an in-memory untrained model
    digest: str | None = None  # the weights' content hash (weights_digest), when read from a folder
    _model: MobileNetLSTM | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def architecture(self) -> str:
        return f"{self.config.architecture.name}/{self.config.architecture.backbone}"

    @property
    def model(self) -> MobileNetLSTM:
        """The PyTorch network, built from the weights on first use (needs the `train` extra: PyTorch)."""
        with self._lock:
            if self._model is None:
                if self.path is None:
                    raise ModelError("an in-memory checkpoint has no weights to build a network from")
                self._model = load_weights(self.path, self.config)
            return self._model

    def array(self, name: str) -> np.ndarray:
        """One tensor of the weights as a float32 NumPy array, read without PyTorch."""
        if self._model is not None:
            return self._model.state_dict()[name].detach().cpu().float().numpy()
        weights = Path(self.path) / WEIGHTS_FILE
        try:
            with safe_open(str(weights), framework="np") as file:
                return file.get_tensor(name).astype(np.float32)
        except (SafetensorError, OSError, KeyError) as exc:
            raise ModelFormatError(f"{weights}: no readable tensor {name!r} ({exc})") from None


def save_checkpoint(directory: str | os.PathLike, model: MobileNetLSTM, config: ModelConfig) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.validate().save(directory / CONFIG_FILE)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "architecture": config.architecture.name})
    return directory


def load_weights(directory: str | os.PathLike, config: ModelConfig) -> MobileNetLSTM:
    """Build the architecture the config describes and load the folder's weights with strict key matching."""
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFormatError(f"{directory}: {WEIGHTS_FILE} is missing")
    try:
        from safetensors.torch import load_file

        from .model import MobileNetLSTM
    except ImportError as exc:
        raise ModelError(
            f"{directory}: building the PyTorch network needs PyTorch ({exc}): install the training extra "
            "(pip install 'deepfake-checker[train]'). Serving without it needs a checkpoint that ships an ONNX export "
            "of its weights (python -m detector export-onnx --model DIR, where PyTorch is installed)"
        ) from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ModelFormatError(f"{weights}: not a valid safetensors file ({exc})") from None
    model = MobileNetLSTM(config.architecture)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise ModelFormatError(f"{weights}: weights do not match the {config.architecture.backbone} architecture ({detail})")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_folder(directory: str | os.PathLike, model_id: str | None = None, revision: str | None = None) -> Checkpoint:
    """Read a checkpoint folder. Its weights are checked against the architecture (strict keys and shapes) now,
    unless the folder ships an ONNX export made from exactly these weights: that is what serving runs, so the
    PyTorch network is built only if something asks for it."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise ModelNotFoundError(f"{directory}: not a checkpoint folder ({CONFIG_FILE} is missing)")
    config = ModelConfig.load(directory / CONFIG_FILE)
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelFormatError(f"{directory}: {WEIGHTS_FILE} is missing")
    digest = weights_digest(directory)  # hashed once: it names the weights and ties an export to them
    checkpoint = Checkpoint(config, model_id or str(directory), revision or digest, directory, digest)
    if not export_is_current(directory, digest):
        checkpoint.model  # noqa: B018 -- build and check the network now: an export will need it
    return checkpoint


def export_is_current(folder: Path, digest: str | None = None) -> bool | None:
    """Whether the ONNX export in a checkpoint folder was made from the weights now beside it (the manifest's
    `weights_revision` against the weights' content hash, `digest` when the caller has it); None when the folder
    holds no export."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    if not (folder / WEIGHTS_FILE).is_file():
        return False
    return manifest.get("weights_revision") == (digest or weights_digest(folder))


def weights_digest(directory: str | os.PathLike) -> str:
    """A short content hash of the weights: the revision of a checkpoint that has no Hub commit."""
    return sha256_file(Path(directory) / WEIGHTS_FILE)[:12]


def build_untrained(config: ModelConfig | None = None, backbone_weights: str | os.PathLike | None = None) -> Checkpoint:
    """An untrained model (ImageNet backbone when its file is available, `backbone_weights`, by default in the
    default shared folder): useful for training and tests only."""
    from safetensors.torch import load_file

    from .model import MobileNetLSTM, load_backbone_state

    config = config or ModelConfig()
    model = MobileNetLSTM(config.architecture)
    file = Path(backbone_weights) if backbone_weights else imagenet_backbone_file()
    if config.architecture.backbone == "mobilenet_v3_small" and file.is_file():
        load_backbone_state(model, load_file(str(file)))
    return Checkpoint(config, "untrained", None, None, _model=model.eval())


def split_model_name(name: str) -> tuple[str, str | None]:
    if "@" in name:
        repo, revision = name.split("@", 1)
        return repo, revision or None
    return name, None


def load_checkpoint(name: str | os.PathLike | None = "default", revision: str | None = None) -> Checkpoint:
    """Load by name: `default` (embedded), a local checkpoint folder, or a Hub id `org/name[@revision]`."""
    name = str(name or "default")
    if name == "default" and not (DEFAULT_CHECKPOINT_DIR / CONFIG_FILE).is_file():
        log.warning("no embedded default checkpoint in %s: using an UNTRAINED model", DEFAULT_CHECKPOINT_DIR)
        return build_untrained()
    if name in EMBEDDED_CHECKPOINTS:
        return load_folder(EMBEDDED_CHECKPOINTS[name], name)
    path = Path(name).expanduser()
    if path.is_dir():
        return load_folder(path)
    if HUB_ID.match(name) and not path.exists():
        from . import hub

        repo_id, pinned = split_model_name(name)
        folder, commit = hub.download_checkpoint(repo_id, revision or pinned)
        try:
            return load_folder(folder, repo_id, commit)
        except ModelFormatError as exc:  # say which Hub checkpoint is broken, not only which cache file
            raise type(exc)(f"{repo_id}@{commit[:12]}: {exc.message}") from None
    raise ModelNotFoundError(f"no model called {name!r}: give 'default', a checkpoint folder or a Hub id org/name")
