"""Do simple frequency or noise-residual features tell the hard sources' fakes from their reals?

A probe run before adding a frequency or SRM noise stream to the model: for the files of the chosen sources in
../shared/data/faces, compute (a) the azimuthally averaged log power spectrum of the grey image (Durall et al.,
"Watch your up-convolution", 2020) and (b) statistics of three SRM high-pass residuals (variance, kurtosis and the
spread of the residual energy over 16 px blocks, which splices make uneven), fit a logistic regression per source on
its `train` files (the most favourable case: a detector for that source alone) and print its ROC-AUC on `val`. Either on the 224 px face crops the model sees
(`--on crops`, from the crop cache, cut as training cuts them) or on the files at full size (`--on files`).

    python experiments/handcrafted_probe.py --sources gan,ciplab --on crops
    python experiments/handcrafted_probe.py --sources gan --on files

Measured on 2026-11-30 (README, "The default checkpoint"), over both image sizes, every feature set and every
regularisation strength: val ROC-AUC 0.20-0.69 on the GAN faces (22 files; the residuals at best, 0.60-0.69, where the
CNN stands too) and 0.43-0.58 on CIPLab, against up to 0.999 on the train files: fitted, not general. No signal worth
a second input stream.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from detector.checkpoint import load_folder
from detector.paths import DEFAULT_CHECKPOINT_DIR  # noqa: E402
from detector.settings import CoreSettings
from detector.training.crops import CropCache
from detector.training.datasets import read_dataset  # noqa: E402

SRM_KERNELS = [
    np.array([[0, 0, 0], [1, -2, 1], [0, 0, 0]], np.float32) / 2,
    np.array([[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]], np.float32) / 4,
    np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]], np.float32)
    / 12,
]


def spectrum(grey: np.ndarray) -> np.ndarray:
    """Azimuthal average of the log power spectrum, out to the Nyquist radius, offset so the lowest bins sit at 0."""
    n = min(grey.shape)
    grey = grey[:n, :n] - grey[:n, :n].mean()
    power = np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2 + 1e-8)
    y, x = np.indices(power.shape)
    radius = np.hypot(x - n / 2, y - n / 2).astype(int)
    profile = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    profile = profile[: n // 2]
    return profile - profile[:8].mean()


def residual_stats(grey: np.ndarray, block: int = 16) -> np.ndarray:
    out = []
    for kernel in SRM_KERNELS:
        res = cv2.filter2D(grey, -1, kernel)[16:-16, 16:-16]
        h, w = (res.shape[0] // block) * block, (res.shape[1] // block) * block
        blocks = res[:h, :w].reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block)
        energy = np.log(blocks.var(1) + 1e-6)
        var = res.var()
        out += [
            np.log(var + 1e-6),
            ((res - res.mean()) ** 4).mean() / (var**2 + 1e-9),
            energy.std(),
            np.ptp(np.percentile(energy, [10, 90])),
        ]
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(CoreSettings.from_env().shared_folder() / "data" / "faces"))
    parser.add_argument("--sources", default="gan,ciplab")
    parser.add_argument("--on", choices=["crops", "files"], default="crops")
    args = parser.parse_args()
    wanted = set(args.sources.split(","))
    samples = [s for s in read_dataset(Path(args.data)) if s.source in wanted and s.split in ("train", "val")]
    if args.on == "crops":
        prep = load_folder(DEFAULT_CHECKPOINT_DIR).config.preprocessing
        images = [c.crops[0] if c is not None else None for c in CropCache(prep).load(samples)]
    else:
        images = [cv2.cvtColor(cv2.imread(str(s.path)), cv2.COLOR_BGR2RGB) for s in samples]
    for wanted_source in sorted(wanted):
        keep = [i for i, im in enumerate(images) if im is not None and samples[i].source == wanted_source]
        greys = [cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY).astype(np.float32) for i in keep]
        spectra = np.array([spectrum(g) for g in greys])
        residuals = np.array([residual_stats(g) for g in greys])
        labels = np.array([samples[i].label == 1 for i in keep])
        train = np.array([samples[i].split == "train" for i in keep])
        for name, features in (("spectrum", spectra), ("residuals", residuals), ("both", np.hstack([spectra, residuals]))):
            scaler = StandardScaler().fit(features[train])
            for c in (0.01, 0.1, 1.0):
                model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
                p = model.fit(scaler.transform(features[train]), labels[train]).predict_proba(scaler.transform(features))[:, 1]
                print(
                    f"{wanted_source:8} {name:9} C={c:<5} ROC-AUC train {roc_auc_score(labels[train], p[train]):.3f}"
                    f"  val {roc_auc_score(labels[~train], p[~train]):.3f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
