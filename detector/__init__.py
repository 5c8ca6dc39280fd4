"""Deepfake detection core: load a MobileNetV3-LSTM checkpoint and analyse images and videos.

    import detector
    det = detector.load("default")          # or a checkpoint folder, or a Hub id "org/name@rev"
    report = det.analyze("clip.mp4")        # -> detector.Report
    print(report.verdict, report.fake_probability)

The core knows nothing about HTTP, Gradio or browsers; shells translate requests into these calls.
"""

from .analyzer import Analysis, AnalysisOptions, Detector, analyze, load
from .config import ModelConfig
from .errors import (
    CorruptMediaError,
    DetectorError,
    EmptyMediaError,
    FetchError,
    FetchTimeoutError,
    HostLookupError,
    HostNotFoundError,
    InvalidUrlError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
    ModelError,
    ModelFormatError,
    ModelNotFoundError,
    ModelOfflineError,
    NoMediaFoundError,
    UnsafeUrlError,
    UnsupportedMediaError,
    UnsupportedUrlSchemeError,
    UrlError,
)
from .media import MediaLimits
from .report import SCHEMA_VERSION, Report

__all__ = [
    "SCHEMA_VERSION",
    "Analysis",
    "AnalysisOptions",
    "CorruptMediaError",
    "Detector",
    "DetectorError",
    "EmptyMediaError",
    "FetchError",
    "FetchTimeoutError",
    "HostLookupError",
    "HostNotFoundError",
    "InvalidUrlError",
    "MediaError",
    "MediaLimits",
    "MediaTooLargeError",
    "MediaTooLongError",
    "ModelConfig",
    "ModelError",
    "ModelFormatError",
    "ModelNotFoundError",
    "ModelOfflineError",
    "NoMediaFoundError",
    "Report",
    "UnsafeUrlError",
    "UnsupportedMediaError",
    "UnsupportedUrlSchemeError",
    "UrlError",
    "analyze",
    "load",
]
