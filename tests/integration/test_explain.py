"""Heatmaps without gradients: the ONNX export's feature maps and the frame head's weights give the Grad-CAM that
autograd gives on the PyTorch model (detector/explain.py says why)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the `train` extra: a serving install runs the other tiers

from detector import Detector
from detector.explain import FRAME_HEAD_WEIGHT, grad_cam
from detector.faces import extract_face_tracks
from detector.media import open_media
from detector.preprocess import crops_to_array
from detector.training.export import autograd_grad_cam


def face_crops(detector: Detector, *sources) -> np.ndarray:
    prep = detector.config.preprocessing
    crops = []
    for source in sources:
        with open_media(source) as media:
            found = extract_face_tracks([media.image], detector.face_detector(), prep.crop_margin, prep.input_size, 4)
        crops += [c for track in found.crops for c in track]
    return np.stack(crops)


def test_heatmaps_from_the_onnx_export_are_autograd_grad_cam(yunet_model, face_photo, full_frame):
    detector = Detector.load("default", yunet_path=str(yunet_model), backend="onnx")
    assert detector.backend.name == "onnxruntime"
    prep = detector.config.preprocessing
    images = crops_to_array(face_crops(detector, face_photo, full_frame), prep)
    assert len(images) >= 2
    for towards_fake in (np.zeros(len(images), bool), np.ones(len(images), bool)):
        ours = grad_cam(detector.backend.feature_maps(images), detector.checkpoint.array(FRAME_HEAD_WEIGHT), towards_fake, prep.input_size)
        reference = autograd_grad_cam(detector.checkpoint.model, torch.from_numpy(images), torch.from_numpy(towards_fake))
        assert ours.shape == reference.shape == (len(images), prep.input_size, prep.input_size)
        for a, b in zip(ours, reference):
            assert b.std() > 0.05  # a map with structure, not a constant
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
            assert np.abs(a - b).max() < 0.02
