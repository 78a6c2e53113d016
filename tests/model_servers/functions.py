"""The models the Triton tests serve, as plain numpy: PyTriton runs these very
functions in its own venv, and the tests compute the expected scores with them
from the matrix Vahini returned. Only numpy is imported, so both venvs can load it."""

from __future__ import annotations

import numpy as np

RANKER_WEIGHTS = (0.8, -0.5, 1.5, 0.25, -1.0, 0.6)


def ranker(features: np.ndarray) -> dict[str, np.ndarray]:
    """An ONNX-style classifier: the label first, then both classes' probabilities [N, 2]
    (skl2onnx lists `output_label` before `output_probability`)."""
    x = features.astype(np.float64)
    w = np.resize(np.asarray(RANKER_WEIGHTS), x.shape[1])
    # Row by row, not a matrix product: a row's score must not depend on the batch it came in.
    p = 1.0 / (1.0 + np.exp(-((x * w).sum(axis=1) - 0.2)))
    return {"output_label": (p > 0.5).astype(np.int64).reshape(-1, 1),
            "output_probability": np.stack([1.0 - p, p], axis=1).astype(np.float32)}


def two_inputs(dense: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """A model of two named inputs: FP64 dense features and INT64 ids (hashed buckets),
    one FP32 score per row."""
    score = dense.astype(np.float64).sum(axis=1) * 0.1 + (ids.astype(np.int64) % 97).sum(axis=1) / 1000.0
    return {"score": score.astype(np.float32).reshape(-1, 1)}
