"""Turn uint8 RGB face crops into the normalised inputs the network reads; training and inference share it."""

from __future__ import annotations

import numpy as np

from .config import PreprocessingConfig


def crops_to_array(crops: np.ndarray | list[np.ndarray], config: PreprocessingConfig) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32, scaled to [0, 1] then normalised with the config's mean/std."""
    array = np.stack(crops) if isinstance(crops, list) else crops
    scale = 1.0 / (255.0 * np.asarray(config.std, dtype=np.float32))
    shift = np.asarray(config.mean, dtype=np.float32) / np.asarray(config.std, dtype=np.float32)
    out = array.astype(np.float32) * scale - shift
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def encode_crops(encode, crops: np.ndarray, config: PreprocessingConfig) -> np.ndarray:
    """Features of (N, S, S, 3) uint8 crops through `encode` (normalised array -> features array); with
    `tta_flip`, the mean of the crops' and their mirror images' features, in one batch."""
    if not config.tta_flip:
        return encode(crops_to_array(crops, config))
    both = encode(crops_to_array(np.concatenate([crops, crops[:, :, ::-1]]), config))
    return (both[: len(crops)] + both[len(crops) :]) / 2


def crops_to_tensor(crops: np.ndarray | list[np.ndarray], config: PreprocessingConfig):
    """The same as `crops_to_array`, as a channels-last torch tensor (the fast layout for CPU convolutions);
    training only: serving reads arrays."""
    import torch

    return torch.from_numpy(crops_to_array(crops, config)).contiguous(memory_format=torch.channels_last)
