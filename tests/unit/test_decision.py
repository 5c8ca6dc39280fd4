"""Calibration, smoothing and verdicts."""

from __future__ import annotations

import pytest

from detector.config import DecisionConfig
from detector.decision import calibrated, clip_logit, decide, moving_average


def test_calibration_with_temperature():
    assert calibrated(0.0, 1.0) == 0.5
    assert calibrated(2.0, 2.0) == pytest.approx(calibrated(1.0, 1.0))
    assert calibrated(-1000.0, 1.0) == 0.0 and calibrated(1000.0, 1.0) == 1.0


def test_moving_average_window_and_gaps():
    assert moving_average([0.0, 1.0, 0.0, 1.0, 0.0], 3) == pytest.approx([0.5, 1 / 3, 2 / 3, 1 / 3, 0.5])
    assert moving_average([1.0, None, 0.0], 3) == [1.0, None, 0.0]
    assert moving_average([0.2, 0.4], 1) == [0.2, 0.4]


def test_verdicts_and_confidence():
    config = DecisionConfig(threshold=0.5, uncertain_band=[0.4, 0.6])
    assert decide(0.9, config) == ("fake", 0.9)
    assert decide(0.1, config) == ("real", pytest.approx(0.9))
    assert decide(0.55, config) == ("uncertain", 0.55)
    assert decide(0.45, config) == ("uncertain", 0.55)
    assert decide(None, config) == ("no_face", None)
    skewed = DecisionConfig(threshold=0.3, uncertain_band=[0.3, 0.3])
    assert decide(0.35, skewed)[0] == "fake"


def test_clip_logit_blends_lstm_and_frames():
    assert clip_logit(2.0, [0.0, 1.0], 0.5) == pytest.approx(1.25)
    assert clip_logit(2.0, [0.0, 1.0], 1.0) == 2.0
