"""Evaluation metrics against scikit-learn, and the trigger view on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest

from topotrigger.evaluate.metrics import (
    acceptance_at_efficiency,
    confusion_matrix,
    efficiency_at_acceptance,
    evaluate_scores,
    roc_curve,
)

metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_and_auc_match_scikit_learn(ties: bool) -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(2000) < 0.4
    scores = rng.normal(size=2000) + positive * 1.2
    if ties:
        scores = np.round(scores, 1)
    fpr, tpr, thresholds = roc_curve(scores, positive)
    ref_fpr, ref_tpr, ref_thresholds = metrics.roc_curve(positive, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thresholds[1:], ref_thresholds[1:])
    probabilities = np.stack([-scores, scores, np.zeros_like(scores)], axis=1)
    labels = positive.astype(int)
    result = evaluate_scores(probabilities, labels, ["a", "b", "c"])
    assert result["auc"]["b"] == pytest.approx(metrics.roc_auc_score(positive, scores), abs=1e-12)
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(labels, probabilities.argmax(axis=1)))


def test_confusion_matrix_matches_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    labels, predicted = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    np.testing.assert_allclose(confusion_matrix(labels, predicted, 3),
                               metrics.confusion_matrix(labels, predicted, normalize="true"))
    np.testing.assert_array_equal(confusion_matrix(labels, predicted, 3, normalize=False),
                                  metrics.confusion_matrix(labels, predicted))


def test_trigger_view_on_known_scores() -> None:
    # 10 signal events with scores 10..19, 100 background events with scores 0..99 (so 80 above 19).
    scores = np.r_[np.arange(10, 20), np.arange(100)].astype(float)
    positive = np.r_[np.ones(10, bool), np.zeros(100, bool)]
    fpr, tpr, _ = roc_curve(scores, positive)
    # Keeping every signal event means a cut at 10: 90 of 100 background events pass.
    assert acceptance_at_efficiency(fpr, tpr, 0.99) == pytest.approx(0.90)
    assert efficiency_at_acceptance(fpr, tpr, 0.5) == 0.0  # 50 background events sit above every signal
    good = np.r_[np.full(10, 200.0), np.arange(100.0)]
    fpr, tpr, _ = roc_curve(good, positive)
    assert efficiency_at_acceptance(fpr, tpr, 0.001) == 1.0 and acceptance_at_efficiency(fpr, tpr, 0.99) == 0.0


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 411), (250, 411), (0, 1)])
def test_clopper_pearson_matches_scipy_binomtest(k: int, n: int) -> None:
    from scipy.stats import binomtest

    from topotrigger.evaluate.metrics import clopper_pearson

    reference = binomtest(k, n).proportion_ci(confidence_level=0.683, method="exact")
    np.testing.assert_allclose(clopper_pearson(k, n, 0.683), (reference.low, reference.high), rtol=1e-9, atol=1e-12)


def test_bootstrap_intervals_cover_the_value_and_shrink_with_statistics() -> None:
    from topotrigger.evaluate.metrics import bootstrap_intervals

    rng = np.random.default_rng(5)
    widths = []
    for n in (150, 2400):
        labels = rng.integers(0, 3, n)
        probabilities = rng.dirichlet(np.ones(3), n) + np.eye(3)[labels] * 0.6
        result = evaluate_scores(probabilities, labels, ["qcd", "ttbar", "wjets"])
        lo, hi = result["intervals"]["auc"]["ttbar"]
        assert lo <= result["auc"]["ttbar"] <= hi
        lo_acc, hi_acc = result["intervals"]["accuracy"]
        assert lo_acc <= result["accuracy"] <= hi_acc
        widths.append(hi - lo)
        assert bootstrap_intervals(probabilities, labels, ["qcd", "ttbar", "wjets"]) == result["intervals"]  # seeded
    assert widths[1] < widths[0] / 2


def test_figures_resting_on_few_events_are_flagged() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 137)  # 411 events: 274 background events per selector
    probabilities = rng.dirichlet(np.ones(3), len(labels)) + np.eye(3)[labels] * 0.5
    view = evaluate_scores(probabilities, labels, ["qcd", "ttbar", "wjets"])["per_class"]["ttbar"]["intervals"]
    at = view["signal_efficiency_at_background_acceptance"]
    assert at["0.001"]["few_events"] and at["0.001"]["background_events_allowed"] == pytest.approx(0.274)
    assert not at["0.1"]["few_events"]
    figure = view["background_acceptance_at_99pct_signal"]
    assert figure["n"] == 274 and figure["interval"][0] <= figure["value"] <= figure["interval"][1]
