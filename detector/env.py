"""Reading `DEEPFAKE_*` settings from the environment: the parsing rules every shell shares."""

from __future__ import annotations

import os
import sys


def parse_bool(value: str) -> bool:
    """1/true/yes/on or 0/false/no/off (empty means no); anything else is a ValueError the shell reports."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a yes/no value (use 1 or 0)")


def threads(requested: int | None = None) -> int:
    """CPU threads for torch, OpenCV and ONNX Runtime: `requested`, else `DEEPFAKE_THREADS`, else every core."""
    from .settings import CoreSettings

    return requested or CoreSettings.current().threads or os.cpu_count() or 1



def set_threads(requested: int | None = None) -> None:
    """Pin the process's thread pools (OpenCV, and PyTorch where it is loaded) so that together they do not
    oversubscribe the cores; ONNX Runtime sessions take `threads()` when they are made."""
    import cv2

    count = threads(requested)
    cv2.setNumThreads(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
