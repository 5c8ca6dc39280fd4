"""Read labelled datasets in the layouts users have, as one list of `Sample`s.

Layouts:
- a folder with `manifest.csv`: columns `path,label` and optional `source,method,group,split` (paths relative
  to the folder; label `real`/`fake` or 0/1);
- a folder with `real/` and `fake/` sub-folders (searched recursively);
- the Kaggle "deepfake and real images" layout: `Train|Validation|Test/{Real,Fake}`.
Files in a folder layout that share a parent folder name ending in a video id are not grouped; only manifests
carry groups. Without a split column, a deterministic 10 % of groups is held out as `val`.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import DetectorError

MEDIA_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".avif",
    ".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".ts",
}  # fmt: skip
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".ts"}
KAGGLE_SPLITS = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}


class DatasetError(DetectorError):
    code = "bad_dataset"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = fake
    source: str = ""
    method: str = ""
    group: str = ""  # samples of one group (frames of one video) stay together in a split and form sequences
    split: str = ""

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES

    @property
    def group_key(self) -> str:
        return self.group or str(self.path)


def parse_label(value: str, where: str) -> int:
    text = str(value).strip().lower()
    if text in ("fake", "1", "deepfake", "manipulated", "synthetic"):
        return 1
    if text in ("real", "0", "original", "pristine"):
        return 0
    raise DatasetError(f"{where}: label {value!r} is neither real nor fake")


def read_dataset(root: str | os.PathLike, split: str | None = None) -> list[Sample]:
    """All samples of the dataset at `root` (of one split when `split` is given), in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    if (root / "manifest.csv").is_file():
        samples = _read_manifest(root)
    elif _kaggle_dirs(root):
        samples = _read_kaggle(root)
    elif (root / "real").is_dir() or (root / "fake").is_dir():
        samples = _read_folders(root, "")
    else:
        raise DatasetError(
            f"{root}: not a dataset: expected manifest.csv, real/ and fake/ folders, or Train|Validation|Test/{{Real,Fake}}"
        )
    if not samples:
        raise DatasetError(f"{root}: the dataset has no media files")
    if any(not s.split for s in samples):
        samples = assign_splits(samples)
    if split:
        samples = [s for s in samples if s.split == split]
        if not samples:
            raise DatasetError(f"{root}: no samples in split {split!r}")
    return samples


def _read_manifest(root: Path) -> list[Sample]:
    manifest = root / "manifest.csv"
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{manifest}: needs at least the columns path and label")
        samples = []
        for line, row in enumerate(reader, start=2):
            where = f"{manifest}:{line}"
            path = root / row["path"]
            samples.append(
                Sample(
                    path=path,
                    label=parse_label(row["label"], where),
                    source=(row.get("source") or "").strip(),
                    method=(row.get("method") or "").strip(),
                    group=(row.get("group") or "").strip(),
                    split=(row.get("split") or "").strip().lower(),
                )
            )
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise DatasetError(f"{manifest}: {len(missing)} listed file(s) are missing, e.g. {missing[0]}")
    return samples


def _media_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)


def _read_folders(root: Path, split: str, source: str = "") -> list[Sample]:
    samples = []
    for name, label in (("real", 0), ("fake", 1)):
        for folder in (root / name, root / name.capitalize()):
            if folder.is_dir():
                samples += [Sample(p, label, source=source or root.name, split=split) for p in _media_files(folder)]
                break
    return samples


def _kaggle_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for child in root.iterdir() if root.is_dir() else []:
        split = KAGGLE_SPLITS.get(child.name.lower())
        if split and child.is_dir() and ((child / "Real").is_dir() or (child / "real").is_dir()):
            found[split] = child
    return found


def _read_kaggle(root: Path) -> list[Sample]:
    samples = []
    for split, folder in sorted(_kaggle_dirs(root).items()):
        samples += _read_folders(folder, split, source=root.name)
    return samples


def assign_splits(samples: list[Sample], val_fraction: float = 0.1) -> list[Sample]:
    """Give samples without a split one, by a hash of their group so that a group never straddles two splits."""
    out = []
    for s in samples:
        if s.split:
            out.append(s)
            continue
        bucket = int(hashlib.sha1(s.group_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out.append(Sample(s.path, s.label, s.source, s.method, s.group, "val" if bucket < val_fraction else "train"))
    return out


def describe(samples: list[Sample]) -> str:
    counts = Counter((s.split or "-", s.source or "-", "fake" if s.label else "real") for s in samples)
    return ", ".join(f"{split}/{source}/{label}: {n}" for (split, source, label), n in sorted(counts.items()))
