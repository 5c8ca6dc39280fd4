"""Save and load checkpoints: a folder with `config.json` and `model.safetensors` (no pickle anywhere).

A model is named by a local folder, `default` (the checkpoint embedded in the repository), or a Hugging Face Hub
id `org/name[@revision]` (downloaded by `detector.hub`). Keys must match the architecture exactly.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .errors import ModelFormatError, ModelNotFoundError
from .model import MobileNetLSTM, load_backbone_state
from .paths import DEFAULT_CHECKPOINT_DIR, EMBEDDED_CHECKPOINTS, imagenet_backbone_file, sha256_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    model: MobileNetLSTM
    config: ModelConfig
    id: str
    revision: str | None
    path: Path | None  # the folder the files were read from; None for an in-memory untrained model

    @property
    def architecture(self) -> str:
        return f"{self.config.architecture.name}/{self.config.architecture.backbone}"


def save_checkpoint(directory: str | os.PathLike, model: MobileNetLSTM, config: ModelConfig) -> Path:
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
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise ModelNotFoundError(f"{directory}: not a checkpoint folder ({CONFIG_FILE} is missing)")
    config = ModelConfig.load(directory / CONFIG_FILE)
    model = load_weights(directory, config)
    return Checkpoint(model, config, model_id or str(directory), revision or weights_digest(directory), directory)


def weights_digest(directory: str | os.PathLike) -> str:
    """A short content hash of the weights: the revision of a checkpoint that has no Hub commit."""
    return sha256_file(Path(directory) / WEIGHTS_FILE)[:12]


def build_untrained(config: ModelConfig | None = None, backbone_weights: str | os.PathLike | None = None) -> Checkpoint:
    """An untrained model (ImageNet backbone when its file is available): useful for training and tests only."""
    config = config or ModelConfig()
    model = MobileNetLSTM(config.architecture)
    file = Path(backbone_weights) if backbone_weights else imagenet_backbone_file()
    if config.architecture.backbone == "mobilenet_v3_small" and file.is_file():
        load_backbone_state(model, load_file(str(file)))
    return Checkpoint(model.eval(), config, "untrained", None, None)


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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
