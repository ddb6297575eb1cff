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
CONFIDENCE = 0.683            # intervals are central 68.3 % (one standard deviation for a Gaussian)
BOOTSTRAP_SAMPLES = 200
FEW_EVENTS = 10               # a figure resting on fewer events than this is flagged, not hidden


def clopper_pearson_arrays(k: np.ndarray, n: int, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The exact (Clopper–Pearson) central interval on efficiencies k/n, element-wise:
    lower = B⁻¹((1−c)/2; k, n−k+1), upper = B⁻¹((1+c)/2; k+1, n−k), with B⁻¹ the beta quantile."""
    from scipy.special import betaincinv

    k = np.asarray(k, dtype=np.float64)
    if n <= 0:
        return np.zeros_like(k), np.ones_like(k)
    alpha = 1.0 - confidence
    # The beta quantile is evaluated with safe arguments where the interval end is fixed at 0 or 1.
    lower = np.where(k > 0, betaincinv(np.maximum(k, 1.0), n - k + 1, alpha / 2), 0.0)
    upper = np.where(k < n, betaincinv(k + 1, np.maximum(n - k, 1.0), 1 - alpha / 2), 1.0)
    return lower, upper


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """`clopper_pearson_arrays` for one efficiency."""
    lower, upper = clopper_pearson_arrays(np.array([k]), n, confidence)
    return float(lower[0]), float(upper[0])


def efficiency(k: int, n: int) -> dict[str, Any]:
    """k/n with its Clopper–Pearson interval, the counts, and whether it rests on fewer than FEW_EVENTS events."""
    lo, hi = clopper_pearson(k, n)
    return {"value": k / n if n else float("nan"), "interval": [lo, hi], "k": int(k), "n": int(n),
            "few_events": bool(min(k, n) < FEW_EVENTS)}


def bootstrap_intervals(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                        samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                        confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Seeded bootstrap (events resampled with replacement) central intervals on the accuracy and each AUC."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    correct = np.argmax(probabilities, axis=1) == labels
    accuracies, aucs = np.empty(samples), np.empty((samples, len(class_names)))
    for i in range(samples):
        pick = rng.integers(0, n, n)
        accuracies[i] = correct[pick].mean()
        aucs[i] = [auc(probabilities[pick, k], labels[pick] == k) for k in range(len(class_names))]
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]

    def central(values: np.ndarray) -> list[float]:
        finite = values[np.isfinite(values)]  # a class absent from the sample has no AUC
        return np.percentile(finite, q).tolist() if len(finite) else [float("nan"), float("nan")]

    return {"accuracy": central(accuracies),
            "auc": {name: central(aucs[:, k]) for k, name in enumerate(class_names)},
            "method": f"bootstrap, {samples} resamples, seed {seed}, central {confidence:.1%}"}


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
    n_pos, n_neg = int(positive.sum()), int(len(positive) - positive.sum())
    at_acceptance = {str(a): efficiency_at_acceptance(fpr, tpr, a) for a in ACCEPTANCES}
    return {
        "signal_efficiency_at_background_acceptance": at_acceptance,
        "background_acceptance_at_99pct_signal": acceptance,
        "rate_reduction_at_99pct_signal": (1.0 / acceptance) if acceptance > 0 else float("inf"),
        # The same figures as counts with Clopper–Pearson intervals (the balanced test sample, not rates).
        "intervals": {
            "signal_efficiency_at_background_acceptance": {
                a: _at_acceptance(int(round(e * n_pos)), n_pos, float(a) * n_neg) for a, e in at_acceptance.items()},
            "background_acceptance_at_99pct_signal": efficiency(int(round(acceptance * n_neg)), n_neg),
        },
        "lepton_selection": {"signal_efficiency": 1.0, "background_acceptance": 1.0},
    }


def _at_acceptance(k: int, n: int, background_allowed: float) -> dict[str, Any]:
    """A signal efficiency at a background acceptance: it also rests on the background events that the
    acceptance allows (0.001 of 300 background events is 0.3 of an event)."""
    figure = efficiency(k, n)
    return figure | {"background_events_allowed": background_allowed,
                     "few_events": figure["few_events"] or background_allowed < FEW_EVENTS}


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
        "intervals": bootstrap_intervals(probabilities, labels, class_names),
        "confusion_matrix": confusion_matrix(labels, predicted, len(class_names)).tolist(),
        "per_class": per_class,
    }
