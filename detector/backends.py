"""Inference backends: the same two calls (encode crops, score a sequence) on PyTorch or on ONNX Runtime.

ONNX Runtime runs MobileNetV3 several times faster than eager PyTorch on a small CPU and keeps its speed when
other processes load the cores, so `auto` uses it whenever the export exists (files beside the weights, or a
cached export keyed by the weights' digest) or can be made; PyTorch otherwise. Both are checked against each
other by a parity test. Grad-CAM always runs on the PyTorch model (it needs gradients).

    encoder.onnx   images (N, 3, S, S) float32, normalised   -> features (N, D)
    sequence.onnx  features (B, T, D)                        -> frame_logits (B, T), clip_logits (B,)

A clip-lstm checkpoint has no encoder of its own: its features are CLIP's embeddings (detector/clip.py, ONNX
Runtime in both backends) and only its sequence head is exported.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import WEIGHTS_FILE, Checkpoint, weights_digest
from .env import threads as chosen_threads
from .model import MobileNetLSTM
from .paths import cache_dir

ENCODER_FILE = "encoder.onnx"
SEQUENCE_FILE = "sequence.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
MANIFEST_FILE = "onnx.json"
OPSET = 17
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
log = logging.getLogger(__name__)


class ClipFeatures:
    """The frame encoder of a clip-lstm checkpoint: CLIP's image tower on ONNX Runtime, unit-length embeddings."""

    def __init__(self, checkpoint: Checkpoint, threads: int | None = None):
        from .clip import ClipEncoder

        self.encoder = ClipEncoder.load(beside=checkpoint.path, threads=threads)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.encoder.embed_pixels(images)


class TorchBackend:
    name = "torch"

    def __init__(self, model: MobileNetLSTM, device: torch.device, clip: ClipFeatures | None = None):
        self.model = model
        self.device = device
        self.clip = clip

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            return self.clip(images)
        batch = torch.from_numpy(images).to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.model.encode(batch).float().cpu().numpy()

    @torch.inference_mode()
    def sequence(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame_logits, clip_logits = self.model.sequence_logits(torch.from_numpy(features).to(self.device))
        return frame_logits.float().cpu().numpy(), clip_logits.float().cpu().numpy()


class OnnxBackend:
    def __init__(self, folder: Path, threads: int | None = None, int8: bool = False, clip: ClipFeatures | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = chosen_threads(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = ["CPUExecutionProvider"]
        self.name = "onnxruntime-int8" if int8 else "onnxruntime"
        self.folder = folder
        self.clip = clip
        if clip is None:
            encoder = folder / (ENCODER_INT8_FILE if int8 else ENCODER_FILE)
            self._encoder = ort.InferenceSession(str(encoder), options, providers=providers)
        self._sequence = ort.InferenceSession(str(folder / SEQUENCE_FILE), options, providers=providers)

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            return self.clip(images)
        return self._encoder.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})[0]

    def sequence(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame_logits, clip_logits = self._sequence.run(None, {"features": np.ascontiguousarray(features, dtype=np.float32)})
        return frame_logits, clip_logits


class _Encoder(torch.nn.Module):
    def __init__(self, model: MobileNetLSTM):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.encode(images)


class _Sequence(torch.nn.Module):
    def __init__(self, model: MobileNetLSTM):
        super().__init__()
        self.model = model

    def forward(self, features):
        return self.model.sequence_logits(features)


def export_onnx(checkpoint: Checkpoint, out: str | os.PathLike, int8: bool = False) -> Path:
    """Write encoder.onnx and sequence.onnx (dynamic batch and sequence length) and a manifest tying them to the
    weights they came from; with `int8`, also a dynamically quantised encoder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = checkpoint.model.cpu().eval()
    size = checkpoint.config.preprocessing.input_size
    dim = checkpoint.config.architecture.feature_dim
    # The wrappers must be in eval mode: the exporter restores the wrapper's mode afterwards, recursively.
    encoder, sequence = _Encoder(model).eval(), _Sequence(model).eval()
    frozen = checkpoint.config.architecture.frozen_encoder  # CLIP: the encoder is its own ONNX file already
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if not frozen:
            torch.onnx.export(
                encoder,
                (torch.zeros(2, 3, size, size),),
                str(out / ENCODER_FILE),
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        torch.onnx.export(
            sequence,
            (torch.zeros(1, 3, dim),),
            str(out / SEQUENCE_FILE),
            input_names=["features"],
            output_names=["frame_logits", "clip_logits"],
            dynamic_axes={"features": {0: "b", 1: "t"}, "frame_logits": {0: "b", 1: "t"}, "clip_logits": {0: "b"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model.eval()
    files = [SEQUENCE_FILE] if frozen else [ENCODER_FILE, SEQUENCE_FILE]
    if int8 and not frozen:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(out / ENCODER_FILE), str(out / ENCODER_INT8_FILE), weight_type=QuantType.QInt8)
        files.append(ENCODER_INT8_FILE)
    manifest = {"weights_revision": checkpoint.revision, "input_size": size, "opset": OPSET, "files": files}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def read_manifest(folder: Path) -> dict | None:
    """The manifest an ONNX export wrote into `folder` (weights revision, input size, opset, files); None if absent
    or unreadable."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def export_is_current(folder: Path) -> bool | None:
    """Whether the ONNX export in a checkpoint folder was made from the weights now beside it (the manifest's
    `weights_revision` against the weights' content hash); None when the folder holds no export."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    return (folder / WEIGHTS_FILE).is_file() and manifest.get("weights_revision") == weights_digest(folder)


def _export_matches(folder: Path, checkpoint: Checkpoint, int8: bool) -> bool:
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    needed = [SEQUENCE_FILE] if checkpoint.config.architecture.frozen_encoder else [ENCODER_INT8_FILE if int8 else ENCODER_FILE, SEQUENCE_FILE]
    return manifest.get("weights_revision") == checkpoint.revision and all((folder / f).is_file() for f in needed)


def onnx_cache_dir() -> Path:
    return cache_dir("onnx")


_export_lock = threading.Lock()


def find_or_export(checkpoint: Checkpoint, int8: bool = False) -> Path:
    """The folder holding an ONNX export of these exact weights: beside the checkpoint, else the cache (made now)."""
    if checkpoint.path is not None and _export_matches(checkpoint.path, checkpoint, int8):
        return checkpoint.path
    if checkpoint.revision is None:
        # an in-memory model (untrained): nothing to key a cache by, so an export for this process only
        folder = Path(tempfile.mkdtemp(prefix="deepfake-onnx-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return export_onnx(checkpoint, folder, int8=int8)
    target = onnx_cache_dir() / checkpoint.revision
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
    checkpoint: Checkpoint, preference: str = "auto", device: torch.device | None = None, threads: int | None = None
):
    """The backend to run inference with: `auto` (ONNX Runtime when possible), `onnx`, `onnx-int8` or `torch`."""
    device = device or torch.device("cpu")
    if preference not in BACKENDS:
        raise ValueError(f"unknown backend {preference!r}; choose one of {', '.join(BACKENDS)}")
    clip = ClipFeatures(checkpoint, threads) if checkpoint.config.architecture.frozen_encoder else None
    if preference == "torch" or (preference == "auto" and device.type != "cpu"):
        return TorchBackend(checkpoint.model, device, clip)
    int8 = preference == "onnx-int8" and clip is None
    try:
        return OnnxBackend(find_or_export(checkpoint, int8), threads, int8, clip)
    except Exception as exc:  # no onnxruntime, no revision, export failure: fall back rather than fail
        if preference != "auto":
            raise
        log.info("ONNX Runtime unavailable (%s): using PyTorch", exc)
        return TorchBackend(checkpoint.model, device, clip)


def register(commands, add_model_options) -> None:
    p = commands.add_parser("export-onnx", help="export a checkpoint to ONNX (frame encoder and sequence head)")
    add_model_options(p)
    p.add_argument("--out", default=None, help="output folder (default: beside the weights when writable, else the cache)")
    p.add_argument("--int8", action="store_true", help="also write a dynamically int8-quantised encoder")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from .checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.model)
    out = Path(args.out) if args.out else (checkpoint.path if checkpoint.path and os.access(checkpoint.path, os.W_OK) else None)
    folder = export_onnx(checkpoint, out, int8=args.int8) if out else find_or_export(checkpoint, args.int8)
    for name in sorted(p.name for p in folder.glob("*.onnx")):
        print(f"{folder / name}  {(folder / name).stat().st_size / 1e6:.1f} MB")
    return 0
