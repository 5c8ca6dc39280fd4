"""Explanation heatmaps: Grad-CAM on the backbone's last convolutional stage, mapped back onto the frame.

For each face crop the map shows where the features that pushed the per-frame score towards the decision
(towards "fake" when the face is judged fake, towards "real" otherwise) sit; crops are mapped back into frame
coordinates, so a heatmap has the frame's size and can be laid over it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .faces import Face, crop_window
from .model import MobileNetLSTM


def grad_cam(model: MobileNetLSTM, images: torch.Tensor, towards_fake: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) normalised crops -> (N, S, S) maps in [0, 1]; `towards_fake[i]` picks the sign to explain."""
    model.eval()
    with torch.enable_grad():
        images = images.detach().requires_grad_(False)
        activations = model.features(images)
        logits = model.frame_head(model.pool(activations).flatten(1)).squeeze(-1)
        signs = torch.where(towards_fake, 1.0, -1.0).to(logits.dtype)
        (grads,) = torch.autograd.grad((logits * signs).sum(), activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * activations).sum(dim=1)).detach()
    size = images.shape[-1]
    cams = torch.nn.functional.interpolate(cams[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    peak = cams.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return (cams / peak[:, None, None]).cpu().numpy().astype(np.float32)


def paste_heatmap(canvas: np.ndarray, cam: np.ndarray, face: Face, margin: float) -> None:
    """Lay a crop's map back over the frame-sized canvas where the crop came from (keeping the maximum)."""
    height, width = canvas.shape
    x0, y0, side = crop_window(face, margin, width, height)
    resized = cv2.resize(cam, (side, side), interpolation=cv2.INTER_LINEAR)
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    patch = resized[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    np.maximum(canvas[fy0:fy1, fx0:fx1], patch, out=canvas[fy0:fy1, fx0:fx1])
