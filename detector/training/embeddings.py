"""CLIP embeddings of the training crops, computed once and cached: the teacher is far too slow to run online
(about 0.17 s a crop on these 2 cores), so training, distillation and the cross-source tables read them from disk.

Cached under `<cache>/embeddings/<crop cache key>-<encoder digest>-v<CACHE_VERSION>/<md5 of the file>.npy`: one
(T, 512) float16 array per file (T crops: frames of a video, 1 for an image), next to the crop cache they were
computed from. CACHE_VERSION changes whenever the way embeddings are computed does, so that none computed by older
code is read back (the CLIP figures of the first cross-source run did not reproduce from embeddings computed afresh,
and its cache, keyed without a version, could not be checked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..clip import ClipEncoder
from ..paths import sha256_file
from ..progress import ProgressLine
from ..settings import CoreSettings
from .crops import CropCache, FaceCrops, file_md5
from .datasets import Sample

CACHE_VERSION = 2


class EmbeddingCache:
    """With a deep encoder (`ClipEncoder(deep=True)`), each row is the unit embedding followed by the class token of
    every block ((T, 512 + 12 * 768) float16, about 19 KB a crop), in a folder of its own."""

    def __init__(self, crops: CropCache, encoder: ClipEncoder, jpeg: tuple[int, int] | None = None):
        self.encoder = encoder
        self.jpeg = jpeg
        self.digest = sha256_file(encoder.tower)[:12]  # the tower's weights, whichever file of them runs
        kind = ("-deep" if encoder.deep else "") + (f"-jpeg{jpeg[0]}-{jpeg[1]}" if jpeg else "")
        self.dir = crops.dir.parent.parent / "embeddings" / f"{crops.key}-{self.digest}{kind}-v{CACHE_VERSION}"
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
        bar = ProgressLine("CLIP embeddings", total=len(todo), unit="file", quiet=not progress)
        for position, index in enumerate(todo):
            batch.append(index)
            if sum(len(crops[i].crops) for i in batch) >= 16 or position == len(todo) - 1:
                pixels = np.concatenate([self._pixels(crops[i].crops, digests[i]) for i in batch])
                embedded = self.encoder.embed_deep(pixels) if self.encoder.deep else self.encoder.embed(pixels)
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

    def _pixels(self, crops: np.ndarray, digest: str) -> np.ndarray:
        """The crops as the encoder sees them: re-encoded as JPEG at one quality per file, drawn from the file's digest
        within `jpeg` (so a file always gets the same copy), where this cache holds compressed copies."""
        if not self.jpeg:
            return crops
        from .augment import jpeg

        quality = int(np.random.default_rng(int(digest[:8], 16)).integers(self.jpeg[0], self.jpeg[1] + 1))
        return np.stack([jpeg(crop, quality) for crop in crops])


def load_crops(
    samples: list[Sample],
    embeddings: bool,
    cache_dir: str | None = None,
    log=print,
    deep: bool = False,
    settings: CoreSettings | None = None,
):
    """Face crops (as inference makes them, 224 px) of every sample, and with `embeddings` their CLIP embeddings
    (with `deep`, every block's class token too: see `EmbeddingCache`), from the caches (computing what is missing):
    (crops, embeddings or None), in the samples' order."""
    cache = CropCache(crops_config(), cache_dir, settings=settings)
    crops = cache.load(samples)
    log(f"face crops: {cache.hits} from cache, {cache.misses} computed")
    if not embeddings:
        return crops, None
    store = EmbeddingCache(cache, clip_encoder(cache.settings, deep))
    embedded = store.load(samples, crops)
    log(f"CLIP embeddings: {store.hits} from cache, {store.misses} computed")
    return crops, embedded


JPEG_QUALITY = (30, 90)  # what platforms re-encode uploads at, from a heavy WhatsApp-like 30 to a light 90


def compressed_embeddings(
    samples: list[Sample], crops: list[FaceCrops | None], quality: tuple[int, int] = JPEG_QUALITY, log=print
) -> list[np.ndarray | None]:
    """CLIP embeddings (the final one, (T, 512)) of every sample's crops re-encoded as JPEG at a quality drawn per file
    within `quality`, cached beside the clean ones: training copies of the files as a platform would serve them, for
    heads whose features must not move when an upload is re-compressed. The crop is compressed, not the whole picture
    before face detection: close to it for faces of about 224 px, milder for small faces that the crop enlarges."""
    cache = CropCache(crops_config())
    store = EmbeddingCache(cache, clip_encoder(cache.settings), jpeg=quality)
    embedded = store.load(samples, crops)
    log(f"CLIP embeddings of JPEG {quality[0]}-{quality[1]} copies: {store.hits} from cache, {store.misses} computed")
    return embedded


def clip_encoder(settings: CoreSettings, deep: bool = False) -> ClipEncoder:
    """The CLIP image tower the settings find (`clip_onnx`, else their CLIP cache)."""
    return ClipEncoder.load(settings.cache_folder("clip"), settings.clip_onnx, deep=deep)


PSEUDO_VERSION = 1


def pseudo_fake_embeddings(
    samples: list[Sample], crops: list[FaceCrops | None], per_source: int = 600, seed: int = 0, log=print
) -> list[np.ndarray | None]:
    """Deep CLIP embeddings of self-blended pseudo-fakes (training/augment.py: a face blended into itself, or another
    real face of the same source blended into it), made from up to `per_source` real files of each source (None for
    the rest), cached like the embeddings. Each file's blend is drawn from a seed of its own, so a file always gets
    the same pseudo-fake whatever else is computed."""
    from .augment import cross_blend, self_blend

    cache = CropCache(crops_config())
    encoder = clip_encoder(cache.settings, deep=True)
    store = EmbeddingCache(cache, encoder)  # the pseudo-fakes' folder sits beside the embeddings of the real files
    folder = store.dir.parent / f"{cache.key}-{store.digest}-pseudo-deep-v{PSEUDO_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    chosen: list[int] = []
    for source in sorted({s.source for s in samples}):
        reals = [i for i, s in enumerate(samples) if s.source == source and s.label == 0 and crops[i] is not None]
        rng = np.random.default_rng([seed, sum(source.encode())])
        chosen += sorted(rng.choice(reals, min(per_source, len(reals)), replace=False).tolist()) if reals else []
    out: list[np.ndarray | None] = [None] * len(samples)
    todo = []
    for i in chosen:
        target = folder / f"{file_md5(samples[i].path)}.npy"
        if target.is_file():
            out[i] = np.load(target).astype(np.float32)
        else:
            todo.append((i, target))
    by_source: dict[str, list[int]] = {}
    for i in chosen:
        by_source.setdefault(samples[i].source, []).append(i)
    bar = ProgressLine("pseudo-fakes", total=len(todo), unit="file")
    for i, target in todo:
        bar.update()
        rng = np.random.default_rng(int(file_md5(samples[i].path)[:8], 16) + seed)
        face = crops[i]
        if rng.random() < 0.5 and len(by_source[samples[i].source]) > 1:
            donor = crops[int(rng.choice([j for j in by_source[samples[i].source] if j != i]))]
            marks = None if donor.landmarks is None else donor.landmarks[0]
            blended = cross_blend(face.crops, face.landmarks, donor.crops[0], marks, rng)
        else:
            blended = self_blend(face.crops, face.landmarks, rng)
        embedded = encoder.embed_deep(blended).astype(np.float16)
        np.save(str(target) + ".tmp.npy", embedded)
        Path(str(target) + ".tmp.npy").replace(target)
        out[i] = embedded.astype(np.float32)
    bar.close()
    log(f"pseudo-fakes: {len(chosen) - len(todo)} from cache, {len(todo)} computed")
    return out


def crops_config():
    """How the crops of the training caches are made: as inference makes them, at 224 px."""
    from ..config import PreprocessingConfig

    return PreprocessingConfig(input_size=224)
