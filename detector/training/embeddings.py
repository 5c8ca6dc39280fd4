"""CLIP embeddings of the training crops, computed once and cached: the teacher is far too slow to run online
(about 0.17 s a crop on these 2 cores), so training, distillation and the cross-source tables read them from disk.

Cached under `<cache>/embeddings/<crop cache key>-<encoder digest>-v<CACHE_VERSION>/<md5 of the file>.npy`: one
(T, 512) float16 array per file (T crops: frames of a video, 1 for an image), next to the crop cache they were
computed from. CACHE_VERSION changes whenever the way embeddings are computed does, so that none computed by older
code is read back (the CLIP figures of the first cross-source run did not reproduce from embeddings computed afresh,
and its cache, keyed without a version, could not be checked).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..clip import ClipEncoder
from .crops import CropCache, FaceCrops, file_md5
from .datasets import Sample

CACHE_VERSION = 2


class EmbeddingCache:
    def __init__(self, crops: CropCache, encoder: ClipEncoder):
        self.encoder = encoder
        with open(encoder.path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()[:12]
        self.dir = crops.dir.parent.parent / "embeddings" / f"{crops.key}-{digest}-v{CACHE_VERSION}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def load(self, samples: list[Sample], crops: list[FaceCrops | None], progress: bool = True) -> list[np.ndarray | None]:
        """(T, 512) float32 embeddings per sample (None where the sample has no crops), computing missing ones."""
        digests = [file_md5(s.path) for s in samples]
        todo = [i for i, (d, c) in enumerate(zip(digests, crops)) if c is not None and not (self.dir / f"{d}.npy").is_file()]
        self.misses += len(todo)
        self.hits += sum(c is not None for c in crops) - len(todo)
        # Batches of several files: one encoder call per 16 crops, whatever the files hold.
        batch: list[int] = []
        bar = tqdm(total=len(todo), desc="CLIP embeddings", unit="file", disable=not progress or None)
        for position, index in enumerate(todo):
            batch.append(index)
            if sum(len(crops[i].crops) for i in batch) >= 16 or position == len(todo) - 1:
                embedded = self.encoder.embed(np.concatenate([crops[i].crops for i in batch]))
                start = 0
                for i in batch:
                    count = len(crops[i].crops)
                    target = self.dir / f"{digests[i]}.npy"
                    np.save(str(target) + ".tmp.npy", embedded[start : start + count].astype(np.float16))
                    Path(str(target) + ".tmp.npy").replace(target)
                    start += count
                bar.update(len(batch))
                batch = []
        bar.close()
        return [np.load(self.dir / f"{d}.npy").astype(np.float32) if c is not None else None for d, c in zip(digests, crops)]


def load_crops(samples: list[Sample], embeddings: bool, cache_dir: str | None = None, log=print):
    """Face crops (as inference makes them, 224 px) of every sample, and with `embeddings` their CLIP embeddings,
    from the caches (computing what is missing): (crops, embeddings or None), in the samples' order."""
    from ..config import PreprocessingConfig

    cache = CropCache(PreprocessingConfig(input_size=224), cache_dir)
    crops = cache.load(samples)
    log(f"face crops: {cache.hits} from cache, {cache.misses} computed")
    if not embeddings:
        return crops, None
    store = EmbeddingCache(cache, ClipEncoder.load())
    embedded = store.load(samples, crops)
    log(f"CLIP embeddings: {store.hits} from cache, {store.misses} computed")
    return crops, embedded
