"""Do the heatmaps served without PyTorch mark the same regions as autograd Grad-CAM did?

For a random sample of the cached face crops (the 224 px crops training cuts from ../shared/data/faces; run
`python -m detector train` or `crossval` once to fill the cache), compare the map `detector.explain.grad_cam` makes
from the ONNX export's feature maps with autograd Grad-CAM on the PyTorch model (`detector.training.export.autograd_grad_cam`),
explaining the side the default checkpoint decides: Pearson correlation, largest absolute difference, and the overlap
(intersection over union) of the hottest 20% of each map.

    python experiments/heatmap_agreement.py --n 200

Measured on 2026-12-02 with `--n 200` (random cached crops of all five sources): Pearson correlation 1.000000 for
every crop (min), largest absolute difference 8.7e-06 (median 1.2e-06), IoU of the hottest 20% median 1.0000,
min 0.9998: the same maps, up to float rounding.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from detector import Detector
from detector.explain import FRAME_HEAD_WEIGHT, grad_cam
from detector.preprocess import crops_to_array
from detector.training.export import autograd_grad_cam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    detector = Detector.load("default", backend="onnx")
    prep = detector.config.preprocessing
    files = sorted(detector.settings.cache_folder("crops").glob("*/*.npz"))
    if not files:
        raise SystemExit("no cached crops: run python -m detector train (or crossval) once")
    rng = np.random.default_rng(args.seed)
    crops = []
    for file in rng.permutation(files):
        with np.load(file) as data:
            if "crops" in data and data["crops"].shape[1:] == (prep.input_size, prep.input_size, 3):
                crops.append(data["crops"][0])
        if len(crops) == args.n:
            break
    images = crops_to_array(np.stack(crops), prep)
    features = detector.backend.encode(images)
    frame_logits, _ = detector.backend.sequence(features[:, None])
    towards_fake = frame_logits[:, 0] >= 0
    ours = np.concatenate([
        grad_cam(detector.backend.feature_maps(images[i : i + 32]), detector.checkpoint.array(FRAME_HEAD_WEIGHT),
                 towards_fake[i : i + 32], prep.input_size)
        for i in range(0, len(images), 32)
    ])  # fmt: skip
    reference = np.concatenate([
        autograd_grad_cam(detector.checkpoint.model, torch.from_numpy(images[i : i + 32]), torch.from_numpy(towards_fake[i : i + 32]))
        for i in range(0, len(images), 32)
    ])  # fmt: skip
    correlation, difference, overlap = [], [], []
    for a, b in zip(ours, reference):
        if b.max() <= 0:  # an all-zero map (nothing pushes towards the side explained) on both sides
            continue
        correlation.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        difference.append(np.abs(a - b).max())
        hot_a, hot_b = a >= np.quantile(a, 0.8), b >= np.quantile(b, 0.8)
        overlap.append((hot_a & hot_b).sum() / max(1, (hot_a | hot_b).sum()))
    print(f"{len(crops)} crops, {len(correlation)} with a non-empty map")
    print(f"Pearson correlation: median {np.median(correlation):.6f}, min {np.min(correlation):.6f}")
    print(f"largest absolute difference (maps in [0, 1]): median {np.median(difference):.2e}, max {np.max(difference):.2e}")
    print(f"IoU of the hottest 20%: median {np.median(overlap):.4f}, min {np.min(overlap):.4f}")


if __name__ == "__main__":
    main()
