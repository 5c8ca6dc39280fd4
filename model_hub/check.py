"""Validate a checkpoint folder before it is published or after it is pulled: files, config schema, weights.

The checks go through the same code inference uses (`ModelConfig.load`, `load_weights` with strict key
matching), so a folder `check` accepts is a folder `detector.load` accepts, and the other way round.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from detector.backends import MANIFEST_FILE as ONNX_MANIFEST
from detector.backends import export_is_current
from detector.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_weights
from detector.config import ModelConfig
from detector.errors import DetectorError

CARD_FILE = "README.md"  # the model card (model_hub/card.py writes it)

# Formats that unpickle (run code) when loaded: never part of a checkpoint.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class CheckResult:
    folder: Path
    problems: list[str] = field(default_factory=list)  # any of these makes the folder unusable
    warnings: list[str] = field(default_factory=list)  # worth knowing, not fatal
    config: ModelConfig | None = None
    parameters: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_folder(folder: str | os.PathLike) -> CheckResult:
    folder = Path(folder)
    result = CheckResult(folder)
    if not folder.is_dir():
        result.problems.append(f"{folder} is not a folder")
        return result
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / required).is_file():
            result.problems.append(f"{required} is missing")
    pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    if pickles:
        result.problems.append(f"pickle-based files are not allowed in a checkpoint (use safetensors): {', '.join(pickles)}")
    if (folder / CONFIG_FILE).is_file():
        try:
            result.config = ModelConfig.load(folder / CONFIG_FILE)
        except DetectorError as exc:
            result.problems.append(f"{CONFIG_FILE}: {exc.message}")
    if result.config is not None and (folder / WEIGHTS_FILE).is_file():
        _check_weights(folder, result)
    if result.config is not None and not result.config.trained:
        result.warnings.append("config.json says the weights are untrained: every Report will carry a warning")
    if export_is_current(folder) is False:
        result.warnings.append(
            f"{ONNX_MANIFEST}: the ONNX export was made from other weights (the ONNX backend will re-export into its "
            "cache); re-run python -m detector export-onnx --model DIR"
        )
    _check_card(folder, result)
    return result


def _check_weights(folder: Path, result: CheckResult) -> None:
    if importlib.util.find_spec("torch") is None:  # a serving install: the tensors, without the network
        _check_tensors(folder, result)
        return
    import torch

    try:
        model = load_weights(folder, result.config)
    except DetectorError as exc:
        result.problems.append(exc.message)
        return
    result.parameters = sum(p.numel() for p in model.parameters())
    broken = [
        name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if broken:
        result.problems.append(f"{WEIGHTS_FILE}: non-finite values (NaN or inf) in {', '.join(broken[:3])}")
        return
    size = result.config.preprocessing.input_size
    with torch.no_grad():
        if model.features is None:  # a clip-lstm checkpoint: heads only, on CLIP embeddings
            frame_logits, clip_logits = model.sequence_logits(torch.zeros(1, 2, result.config.architecture.feature_dim))
        else:
            frame_logits, clip_logits = model(torch.zeros(1, 2, 3, size, size))
    if frame_logits.shape != (1, 2) or clip_logits.shape != (1,):
        result.problems.append(f"the model gives outputs of shape {tuple(frame_logits.shape)}, {tuple(clip_logits.shape)}")


def _check_tensors(folder: Path, result: CheckResult) -> None:
    """Without PyTorch: every tensor readable and finite; the key names are checked where the network is built."""
    import numpy as np
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="np") as file:
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 -- safe_open is no dict
    except (SafetensorError, OSError) as exc:
        result.problems.append(f"{WEIGHTS_FILE}: not a valid safetensors file ({exc})")
        return
    buffers = ("running_mean", "running_var", "num_batches_tracked", "reference")  # state, not parameters
    result.parameters = sum(t.size for name, t in tensors.items() if not name.endswith(buffers))
    broken = [name for name, t in tensors.items() if t.dtype.kind == "f" and not np.isfinite(t).all()]
    if broken:
        result.problems.append(f"{WEIGHTS_FILE}: non-finite values (NaN or inf) in {', '.join(broken[:3])}")
    result.warnings.append("PyTorch is not installed: the weights were read, not built into the network (strict keys unchecked)")


def _check_card(folder: Path, result: CheckResult) -> None:
    card = folder / CARD_FILE
    if not card.is_file():
        result.warnings.append(f"no model card ({CARD_FILE}): write one with python -m model_hub card DIR --report EVAL.json")
        return
    from huggingface_hub import ModelCard

    try:
        data = ModelCard.load(card).data
    except (ValueError, OSError) as exc:
        result.problems.append(f"{CARD_FILE}: the metadata cannot be read ({exc})")
        return
    if not data.get("license"):
        result.warnings.append(f"{CARD_FILE}: no license in the metadata")
    if not data.eval_results:
        result.warnings.append(f"{CARD_FILE}: no measured metrics (model-index)")
