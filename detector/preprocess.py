"""Turn uint8 RGB face crops into the normalised tensors the network reads; training and inference share it."""

from __future__ import annotations

import numpy as np
import torch

from .config import PreprocessingConfig


def crops_to_tensor(crops: np.ndarray | list[np.ndarray], config: PreprocessingConfig) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32, scaled to [0, 1] then normalised with the config's mean/std."""
    array = np.stack(crops) if isinstance(crops, list) else crops
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1)
    return tensor.sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
