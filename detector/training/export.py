"""Export a checkpoint to ONNX: the one step between training and serving that needs PyTorch.

The files, their inputs and outputs and the manifest are named in detector/onnxlayout.py. `python -m detector
export-onnx --model DIR` (detector/training/exportcommand.py) writes them beside the weights, where a checkpoint
ships them so that the serving install (no PyTorch) can run it; detector/backends.py reads them, and makes an export
on first use through `export_onnx` where PyTorch is installed.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..model import MobileNetLSTM
from ..onnxlayout import (
    ACTIVATIONS,
    CLIP_LOGITS,
    ENCODER_FILE,
    ENCODER_INT8_FILE,
    ENCODER_OUTPUTS,
    FEATURES,
    FRAME_LOGITS,
    IMAGES,
    MANIFEST_FILE,
    OPSET,
    SEQUENCE_FILE,
    SEQUENCE_OUTPUTS,
)


class _Encoder(torch.nn.Module):
    def __init__(self, model: MobileNetLSTM):
        super().__init__()
        self.model = model

    def forward(self, images):
        maps = self.model.features(images)
        return self.model.pool(maps).flatten(1), maps


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
                input_names=[IMAGES],
                output_names=list(ENCODER_OUTPUTS),
                dynamic_axes={IMAGES: {0: "n"}, FEATURES: {0: "n"}, ACTIVATIONS: {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        torch.onnx.export(
            sequence,
            (torch.zeros(1, 3, dim),),
            str(out / SEQUENCE_FILE),
            input_names=[FEATURES],
            output_names=list(SEQUENCE_OUTPUTS),
            dynamic_axes={FEATURES: {0: "b", 1: "t"}, FRAME_LOGITS: {0: "b", 1: "t"}, CLIP_LOGITS: {0: "b"}},
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
    if not frozen:
        manifest["encoder_outputs"] = list(ENCODER_OUTPUTS)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def autograd_grad_cam(model: MobileNetLSTM, images: torch.Tensor, towards_fake: torch.Tensor) -> np.ndarray:
    """Grad-CAM by automatic differentiation, as published (Selvaraju et al., 2017) and as the heatmaps were made
    before serving went PyTorch-free: the reference that `detector.explain.grad_cam` is checked against."""
    model.eval()
    with torch.enable_grad():
        activations = model.features(images.detach())
        logits = model.frame_head(model.pool(activations).flatten(1)).squeeze(-1)
        signs = torch.where(towards_fake, 1.0, -1.0).to(logits.dtype)
        (grads,) = torch.autograd.grad((logits * signs).sum(), activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * activations).sum(dim=1)).detach()
    size = images.shape[-1]
    cams = torch.nn.functional.interpolate(cams[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    peak = cams.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return (cams / peak[:, None, None]).cpu().numpy().astype(np.float32)
