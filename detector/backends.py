"""Inference backends: the same calls (encode crops, score a sequence, feature maps for heatmaps) on ONNX Runtime
or on PyTorch.

ONNX Runtime runs MobileNetV3 several times faster than eager PyTorch on a small CPU and keeps its speed when
other processes load the cores, so `auto` uses it whenever the export exists (files beside the weights, or a
cached export keyed by the weights' digest) or can be made; PyTorch otherwise. Serving from an export needs no
PyTorch at all (the serving install has none); making an export does (detector/training/export.py). Both backends are
checked against each other by a parity test.

The export's files, inputs and outputs are named in detector/onnxlayout.py; `activations` are the backbone's last feature maps, which the explanation heatmaps are made from (detector/explain.py).
A clip-lstm checkpoint has no encoder of its own: its features are CLIP's embeddings (detector/clip.py, ONNX
Runtime in both backends) and only its sequence head is exported.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, export_is_current, weights_digest
from .env import threads as chosen_threads
from .onnxlayout import (
    ACTIVATIONS,
    ENCODER_FILE,
    ENCODER_INT8_FILE,
    FEATURES,
    IMAGES,
    MANIFEST_FILE,
    SEQUENCE_FILE,
    read_manifest,
)
from .ortoptions import spin_within_runs
from .settings import CoreSettings

__all__ = ["MANIFEST_FILE", "export_is_current", "read_manifest"]  # read by model_hub/ from here
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
log = logging.getLogger(__name__)


class ClipFeatures:
    """The frame encoder of a clip-lstm checkpoint: CLIP's image tower on ONNX Runtime, unit-length embeddings, and
    the class tokens of the blocks the checkpoint reads (`clip_layers`), from the same forward pass."""

    def __init__(self, checkpoint: Checkpoint, settings: CoreSettings, threads: int | None = None):
        from .clip import ClipEncoder, deep_columns

        layers = checkpoint.config.architecture.clip_layers
        cache = settings.cache_folder("clip")
        self.encoder = ClipEncoder.load(cache, settings.clip_onnx, checkpoint.path, threads, deep=bool(layers))
        self.columns = deep_columns(layers) if layers else None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.columns is None:
            return self.encoder.embed_pixels(images)
        return self.encoder.deep_pixels(images)[:, self.columns]


class TorchBackend:
    name = "torch"

    def __init__(self, model, device="cpu", clip: ClipFeatures | None = None, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.clip = clip

    def _batch(self, images: np.ndarray):
        batch = self.torch.from_numpy(images).to(self.device)
        return batch.contiguous(memory_format=self.torch.channels_last) if self.device.type == "cpu" else batch

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            return self.clip(images)
        with self.torch.inference_mode():
            return self.model.encode(self._batch(images)).float().cpu().numpy()

    def feature_maps(self, images: np.ndarray) -> np.ndarray | None:
        if self.clip is not None:
            return None
        with self.torch.inference_mode():
            return self.model.features(self._batch(images)).float().cpu().numpy()

    def sequence(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            frame_logits, clip_logits = self.model.sequence_logits(self.torch.from_numpy(features).to(self.device))
        return frame_logits.float().cpu().numpy(), clip_logits.float().cpu().numpy()


class OnnxBackend:
    def __init__(self, folder: Path, threads: int | None = None, int8: bool = False, clip: ClipFeatures | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = chosen_threads(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        spin_within_runs(options)
        providers = ["CPUExecutionProvider"]
        self.name = "onnxruntime-int8" if int8 else "onnxruntime"
        self.folder = folder
        self.clip = clip
        self._maps = False
        if clip is None:
            encoder = folder / (ENCODER_INT8_FILE if int8 else ENCODER_FILE)
            self._encoder = ort.InferenceSession(str(encoder), options, providers=providers)
            self._maps = ACTIVATIONS in {output.name for output in self._encoder.get_outputs()}
        self._sequence = ort.InferenceSession(str(folder / SEQUENCE_FILE), options, providers=providers)

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            return self.clip(images)
        return self._encoder.run([FEATURES], {IMAGES: np.ascontiguousarray(images, dtype=np.float32)})[0]

    def feature_maps(self, images: np.ndarray) -> np.ndarray | None:
        """The backbone's last feature maps (N, C, h, w); None for an export made before they were an output."""
        if not self._maps:
            return None
        return self._encoder.run([ACTIVATIONS], {IMAGES: np.ascontiguousarray(images, dtype=np.float32)})[0]

    def sequence(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame_logits, clip_logits = self._sequence.run(None, {FEATURES: np.ascontiguousarray(features, dtype=np.float32)})
        return frame_logits, clip_logits


def _export_matches(folder: Path, checkpoint: Checkpoint, int8: bool, revision: str | None = None, maps: bool = True) -> bool:
    """Whether `folder` holds an export of these weights (`revision`: the checkpoint's, or the weights' digest
    for an export beside them) with the files this backend needs, and with feature maps when `maps`."""
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    frozen = checkpoint.config.architecture.frozen_encoder
    needed = [SEQUENCE_FILE] if frozen else [ENCODER_INT8_FILE if int8 else ENCODER_FILE, SEQUENCE_FILE]
    if maps and not frozen and ACTIVATIONS not in manifest.get("encoder_outputs", []):
        return False
    return manifest.get("weights_revision") == (revision or checkpoint.revision) and all((folder / f).is_file() for f in needed)


def _beside(checkpoint: Checkpoint, int8: bool, maps: bool = True) -> bool:
    """An export shipped beside the weights counts when it was made from them (a Hub checkpoint's revision is a
    commit, so the weights' digest is what ties the two)."""
    folder = checkpoint.path
    if folder is None or read_manifest(folder) is None:
        return False
    return _export_matches(folder, checkpoint, int8, checkpoint.revision, maps) or _export_matches(
        folder, checkpoint, int8, checkpoint.digest or weights_digest(folder), maps
    )


_export_lock = threading.Lock()


def find_or_export(checkpoint: Checkpoint, cache: Path, int8: bool = False) -> Path:
    """The folder holding an ONNX export of these exact weights: beside the checkpoint, else the `cache` folder
    (`CoreSettings.cache_folder("onnx")`; made now, which needs PyTorch). Without PyTorch, an older export without
    feature maps still serves (without heatmaps)."""
    if _beside(checkpoint, int8):
        return checkpoint.path
    target = cache / checkpoint.revision if checkpoint.revision else None
    if target is not None and _export_matches(target, checkpoint, int8):
        return target
    if importlib.util.find_spec("torch") is None:
        if _beside(checkpoint, int8, maps=False):
            return checkpoint.path
        if target is not None and _export_matches(target, checkpoint, int8, maps=False):
            return target
    from .training.export import export_onnx  # PyTorch from here on

    if target is None:
        # an in-memory model (untrained): nothing to key a cache by, so an export for this process only
        folder = Path(tempfile.mkdtemp(prefix="deepfake-onnx-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return export_onnx(checkpoint, folder, int8=int8)
    with _export_lock:
        if not _export_matches(target, checkpoint, int8):
            # export into a temporary folder and move it into place, so concurrent processes never see half a file
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".export-"))
            try:
                export_onnx(checkpoint, staging, int8=int8)
                if target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def create_backend(
    checkpoint: Checkpoint,
    settings: CoreSettings,
    preference: str | None = None,
    device: str | None = None,
    threads: int | None = None,
):
    """The backend to run inference with: `preference` (default: the settings' `backend`), `auto` (ONNX Runtime when
    possible), `onnx`, `onnx-int8` or `torch`; `threads` (default: the settings' `threads`, else every core)."""
    device = str(device or "cpu")
    preference = preference or settings.backend
    threads = threads or settings.threads or None
    if preference not in BACKENDS:
        raise ValueError(f"unknown backend {preference!r}; choose one of {', '.join(BACKENDS)}")
    clip = ClipFeatures(checkpoint, settings, threads) if checkpoint.config.architecture.frozen_encoder else None
    if preference == "torch" or (preference == "auto" and device != "cpu"):
        return TorchBackend(checkpoint.model, device, clip, threads)
    int8 = preference == "onnx-int8" and clip is None
    try:
        return OnnxBackend(find_or_export(checkpoint, settings.cache_folder("onnx"), int8), threads, int8, clip)
    except Exception as exc:  # no onnxruntime, no revision, export failure: fall back rather than fail
        if preference != "auto" or importlib.util.find_spec("torch") is None:
            raise
        log.info("ONNX Runtime unavailable (%s): using PyTorch", exc)
        return TorchBackend(checkpoint.model, device, clip, threads)
