"""Deepfake detection core: load a MobileNetV3-LSTM checkpoint and analyse images and videos.

    import detector
    det = detector.load("default")          # or a checkpoint folder, or a Hub id "org/name@rev"
    report = det.analyze("clip.mp4")        # -> detector.Report
    print(report.verdict, report.fake_probability)

The core knows nothing about HTTP, Gradio or browsers; shells translate requests into these calls.
"""

from importlib import import_module

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
    ModelNotOfferedError,
    ModelOfflineError,
    NoMediaFoundError,
    UnsafeUrlError,
    UnsupportedMediaError,
    UnsupportedUrlSchemeError,
    UrlError,
)
from .report import SCHEMA_VERSION, Report

# Loaded on first use, so that `import detector` (and a CLI that only has to say "no such file") stays fast: the
# analyzer pulls in PyTorch, OpenCV and PyAV.
_LAZY = {
    "Analysis": "analyzer",
    "AnalysisOptions": "analyzer",
    "Detector": "analyzer",
    "analyze": "pipeline",
    "load": "analyzer",
    "ModelConfig": "config",
    "MediaLimits": "media",
    "ModelPool": "pool",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
    "ModelNotOfferedError",
    "ModelPool",
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
