"""Classification metrics in NumPy: accuracy and one-vs-rest ROC AUC (rank statistic, ties averaged)."""

from __future__ import annotations

import numpy as np


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = average[inverse]
    return ranks


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the boolean `positive` (Mann-Whitney U / (n+ · n−))."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float | list[float]]:
    return {
        "accuracy": float(np.mean(np.argmax(probabilities, axis=1) == labels)) if len(labels) else float("nan"),
        "auc": [auc(probabilities[:, k], labels == k) for k in range(probabilities.shape[1])],
    }
