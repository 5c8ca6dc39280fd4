"""Explanation heatmaps: Grad-CAM on the backbone's last convolutional stage, mapped back onto the frame.

For each face crop the map shows where the features that pushed the per-frame score towards the decision
(towards "fake" when the face is judged fake, towards "real" otherwise) sit; crops are mapped back into frame
coordinates, so a heatmap has the frame's size and can be laid over it.

The frame head is linear on the spatial mean of the last feature maps A (logit = w · mean_hw(A) + b), so the
gradient of the logit with respect to A[c, i, j] is w[c] / (h·w) at every position: Grad-CAM's channel weights are
the head's own weights, and the map is ReLU(±Σ_c w[c]·A[c]) up to a constant that the normalisation removes. No
gradients are needed, so heatmaps come from the ONNX export as they do from PyTorch (tests/integration/test_explain.py checks
them against autograd Grad-CAM).
"""

from __future__ import annotations

import cv2
import numpy as np

from .faces import Face, crop_window

FRAME_HEAD_WEIGHT = "frame_head.1.weight"  # the (1, D) weight of the frame head's linear layer


def grad_cam(activations: np.ndarray, head_weight: np.ndarray, towards_fake: np.ndarray, size: int) -> np.ndarray:
    """(N, C, h, w) feature maps -> (N, size, size) maps in [0, 1]; `towards_fake[i]` picks the sign to explain."""
    signs = np.where(np.asarray(towards_fake, dtype=bool), 1.0, -1.0).astype(np.float32)
    weighted = np.einsum("nchw,c->nhw", activations.astype(np.float32), np.asarray(head_weight, np.float32).reshape(-1))
    cams = np.maximum(weighted * signs[:, None, None], 0.0)
    # bilinear with half-pixel centres, as torch's interpolate(align_corners=False) upsamples
    resized = np.stack([cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR) for cam in cams])
    peak = np.maximum(resized.reshape(len(resized), -1).max(axis=1), 1e-12)
    return (resized / peak[:, None, None]).astype(np.float32)


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
