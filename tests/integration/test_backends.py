"""ONNX Runtime and PyTorch give the same answers on real inputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the `train` extra: a serving install runs the other tiers

from detector import Detector
from detector.backends import OnnxBackend, TorchBackend, create_backend
from detector.checkpoint import build_untrained, load_folder, save_checkpoint
from detector.settings import CoreSettings
from detector.training.export import export_onnx


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint on disk whose heads are not all-zero (random but fixed), so parity is meaningful."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    untrained = build_untrained()
    for head in (untrained.model.frame_head[1], untrained.model.clip_head[1]):
        torch.nn.init.normal_(head.weight, std=0.2)
    save_checkpoint(folder, untrained.model, untrained.config)
    return load_folder(folder)


def test_export_and_parity_on_real_media(checkpoint, tmp_path, fake_video, full_frame, yunet_model, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))
    onnx = Detector(checkpoint, yunet_path=str(yunet_model), backend="onnx")
    torch_ = Detector(checkpoint, yunet_path=str(yunet_model), backend="torch")
    assert onnx.backend.name == "onnxruntime" and torch_.backend.name == "torch"
    for source in (fake_video, full_frame):
        a, b = onnx.analyze(source).to_dict(), torch_.analyze(source).to_dict()
        assert a["fake_probability"] == pytest.approx(b["fake_probability"], abs=1e-4)
        for fa, fb in zip(a["frames"], b["frames"]):
            assert fa["fake_probability"] == pytest.approx(fb["fake_probability"], abs=1e-4)
    # the export was cached by the weights' digest and is reused
    assert (tmp_path / "onnx" / checkpoint.revision / "encoder.onnx").is_file()


def test_dynamic_batch_and_sequence_length(checkpoint, tmp_path):
    folder = export_onnx(checkpoint, tmp_path / "export", int8=True)
    onnx, reference = OnnxBackend(folder), TorchBackend(checkpoint.model, torch.device("cpu"))
    rng = np.random.default_rng(0)
    for n in (1, 5, 33):
        images = rng.normal(size=(n, 3, 224, 224)).astype(np.float32)
        assert np.abs(onnx.encode(images) - reference.encode(images)).max() < 1e-3
    for batch, steps in ((1, 1), (1, 16), (3, 7)):
        features = rng.normal(size=(batch, steps, 576)).astype(np.float32)
        (fa, ca), (fb, cb) = onnx.sequence(features), reference.sequence(features)
        assert fa.shape == (batch, steps) and np.abs(fa - fb).max() < 1e-4 and np.abs(ca - cb).max() < 1e-4
    int8 = OnnxBackend(folder, int8=True)
    assert int8.encode(rng.normal(size=(2, 3, 224, 224)).astype(np.float32)).shape == (2, 576)


def test_an_in_memory_model_is_exported_for_the_process():
    assert create_backend(build_untrained(), CoreSettings(), "auto").name == "onnxruntime"
    assert create_backend(build_untrained(), CoreSettings(), "torch").name == "torch"
