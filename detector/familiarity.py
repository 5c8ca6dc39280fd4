"""Is this face like the faces the model learned from? A detector's scores mean little far from its training data,
and a confident "fake" there is a guess; such faces are answered `uncertain`.

The clip-lstm checkpoint keeps a sample of its training faces' CLIP embeddings (`reference`); a face's
unfamiliarity is the mean cosine distance of its embedding to its `K` nearest reference embeddings. The limit
(`DecisionConfig.unfamiliar_above`) is the `quantile` of the validation faces' unfamiliarity, so about 1% of faces
like the training data's are flagged.
"""

from __future__ import annotations

import numpy as np

K = 5


def unfamiliarity(embeddings: np.ndarray, reference: np.ndarray, k: int = K) -> np.ndarray:
    """(N, D) unit embeddings -> (N,) mean cosine distance to the k nearest of the (M, D) unit reference."""
    similarity = embeddings.astype(np.float32) @ reference.astype(np.float32).T
    k = min(k, reference.shape[0])
    nearest = np.partition(-similarity, k - 1, axis=1)[:, :k]
    return 1.0 + nearest.mean(axis=1)  # 1 - mean similarity


def choose_reference(embeddings: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """A random sample of `size` training embeddings (all of them when there are fewer)."""
    rng = np.random.default_rng(seed)
    if len(embeddings) <= size:
        return embeddings.astype(np.float32)
    return embeddings[np.sort(rng.choice(len(embeddings), size, replace=False))].astype(np.float32)


def choose_limit(val_embeddings: np.ndarray, reference: np.ndarray, quantile: float = 0.99) -> float:
    return float(np.quantile(unfamiliarity(val_embeddings, reference), quantile))
