"""Evaluation metrics as plain NumPy functions (checked against scikit-learn in the tests).

The trigger view treats each class's score as a selector of that class: its signal is the class,
its background every other class of the test set. "Background acceptance" is the fraction of
background events the selector keeps; on top of the lepton selection (which keeps all test events
by construction), the rate reduction is 1 / acceptance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from topotrigger.train.metrics import auc

ACCEPTANCES = (0.1, 0.01, 0.001)
SIGNAL_EFFICIENCY = 0.99


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, one point per distinct score, from (0, 0)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positive[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of equal scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = max(y.sum(), 1.0), max(len(y) - y.sum(), 1.0)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, s[last]]


def efficiency_at_acceptance(fpr: np.ndarray, tpr: np.ndarray, acceptance: float) -> float:
    """The best signal efficiency of a cut whose background acceptance is at most `acceptance`."""
    ok = fpr <= acceptance
    return float(tpr[ok].max()) if ok.any() else 0.0


def acceptance_at_efficiency(fpr: np.ndarray, tpr: np.ndarray, efficiency: float) -> float:
    """The smallest background acceptance of a cut keeping at least `efficiency` of the signal."""
    ok = tpr >= efficiency
    return float(fpr[ok].min()) if ok.any() else 1.0


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int, normalize: bool = True) -> np.ndarray:
    """Rows: true class; columns: predicted class; rows sum to 1 when normalised."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(matrix, (labels, predicted), 1.0)
    if normalize:
        matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    return matrix


def trigger_view(scores: np.ndarray, positive: np.ndarray) -> dict[str, Any]:
    fpr, tpr, thresholds = roc_curve(scores, positive)
    acceptance = acceptance_at_efficiency(fpr, tpr, SIGNAL_EFFICIENCY)
    return {
        "signal_efficiency_at_background_acceptance": {str(a): efficiency_at_acceptance(fpr, tpr, a) for a in ACCEPTANCES},
        "background_acceptance_at_99pct_signal": acceptance,
        "rate_reduction_at_99pct_signal": (1.0 / acceptance) if acceptance > 0 else float("inf"),
        "lepton_selection": {"signal_efficiency": 1.0, "background_acceptance": 1.0},
    }


def evaluate_scores(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Everything `metrics.json` holds for one model: accuracy, AUCs, confusion matrix, trigger view."""
    if len(labels) == 0:
        raise ValueError("no events to evaluate")
    predicted = np.argmax(probabilities, axis=1)
    per_class = {}
    for k, name in enumerate(class_names):
        positive = labels == k
        per_class[name] = {"auc": auc(probabilities[:, k], positive), "events": int(positive.sum()),
                           **trigger_view(probabilities[:, k], positive)}
    return {
        "events": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "auc": {name: per_class[name]["auc"] for name in class_names},
        "confusion_matrix": confusion_matrix(labels, predicted, len(class_names)).tolist(),
        "per_class": per_class,
    }
