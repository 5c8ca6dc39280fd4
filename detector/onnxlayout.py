"""The layout of a checkpoint's ONNX export: its file names, its inputs and outputs, and its manifest.

    encoder.onnx   images (N, 3, S, S) float32, normalised   -> features (N, D), activations (N, C, h, w)
    sequence.onnx  features (B, T, D)                        -> frame_logits (B, T), clip_logits (B,)
    onnx.json      the weights' revision the files were made from, the input size, the opset, the outputs

The writer (detector/training/export.py, PyTorch) and the readers (detector/backends.py, ONNX Runtime; the
checkpoint loader; model_hub/) share these names from here, a leaf that imports nothing of the project.
"""

from __future__ import annotations

import json
from pathlib import Path

ENCODER_FILE = "encoder.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
SEQUENCE_FILE = "sequence.onnx"
MANIFEST_FILE = "onnx.json"
OPSET = 17

IMAGES = "images"  # the encoder's input
FEATURES = "features"  # the encoder's first output, the sequence head's input
ACTIVATIONS = "activations"  # the encoder output heatmaps are made from
FRAME_LOGITS = "frame_logits"
CLIP_LOGITS = "clip_logits"
ENCODER_OUTPUTS = (FEATURES, ACTIVATIONS)
SEQUENCE_OUTPUTS = (FRAME_LOGITS, CLIP_LOGITS)


def read_manifest(folder: Path) -> dict | None:
    """The manifest an ONNX export wrote into `folder` (weights revision, input size, opset, files); None if absent
    or unreadable."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
