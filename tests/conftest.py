"""Shared fixtures: the third-party media under $DEEPFAKE_SHARED_DIR (default ../shared) and a loaded detector."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from detector.paths import shared_dir  # noqa: E402

SHARED = shared_dir()


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.fail(f"test data {path} is missing: point DEEPFAKE_SHARED_DIR at the shared data folder")
    return path


@pytest.fixture(scope="session")
def fake_video() -> Path:
    return shared_file("data/media/videos/fake_ffpp_000_003.mp4")


@pytest.fixture(scope="session")
def real_video() -> Path:
    return shared_file("data/media/seed/real.mp4")


@pytest.fixture(scope="session")
def full_frame() -> Path:
    return shared_file("data/media/frames/real_real_frame_8.png")


@pytest.fixture(scope="session")
def face_photo() -> Path:
    return shared_file("data/media/seed/real.jpg")


@pytest.fixture(scope="session")
def yunet_model() -> Path:
    return shared_file("models/face_detection_yunet.onnx")


@pytest.fixture(scope="session")
def detector(yunet_model):
    from detector import Detector

    return Detector.load("default", yunet_path=str(yunet_model))
