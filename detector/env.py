"""CPU threads: how many the process's thread pools (OpenCV, ONNX Runtime, PyTorch) take, so they do not
oversubscribe the cores."""

from __future__ import annotations

import os
import sys


def threads(requested: int | None = None, configured: int = 0) -> int:
    """CPU threads for torch, OpenCV and ONNX Runtime: `requested`, else `configured` (the `threads` setting), else
    every core."""
    return requested or configured or os.cpu_count() or 1


def set_threads(requested: int | None = None, configured: int = 0) -> None:
    """Pin the process's thread pools (OpenCV, and PyTorch where it is loaded) so that together they do not
    oversubscribe the cores; ONNX Runtime sessions take `threads()` when they are made."""
    import cv2

    count = threads(requested, configured)
    cv2.setNumThreads(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
