"""Evaluation plots (matplotlib with mplhep's HEP styling), written as PNG (150 dpi) and PDF.

Every panel carries the "Simulation" and √s = 13 TeV labels; legends sit outside the curves'
busiest corner (or in a panel of their own) so that nothing is hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from topotrigger._optional import require
from topotrigger.evaluate.metrics import clopper_pearson_arrays, roc_curve


def _pyplot() -> Any:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    hep = require("mplhep")
    import matplotlib.pyplot as plt

    hep.style.use("ROOT")
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 150, "font.size": 14})
    return plt


def _label(ax: Any) -> None:
    ax.text(0.0, 1.01, "Simulation", transform=ax.transAxes, ha="left", va="bottom", fontsize=12,
            fontweight="bold", fontstyle="italic")
    ax.text(1.0, 1.01, "√s = 13 TeV", transform=ax.transAxes, ha="right", va="bottom", fontsize=12)


def _save(fig: Any, path: Path) -> Path:
    """The PNG at `path` (returned: the report embeds it) and a PDF beside it."""
    plt = _pyplot()
    for ax in fig.axes:
        if ax.get_visible() and ax.has_data():
            _label(ax)
    fig.tight_layout()
    fig.savefig(path)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def _selector_panels(class_names: list[str], rows: int = 1) -> tuple[Any, list[Any]]:
    """One column of panels per class's selector, side by side; the panels row by row."""
    plt = _pyplot()
    fig, axes = plt.subplots(rows, len(class_names), figsize=(6 * len(class_names), 5.5 * rows), squeeze=False)
    return fig, list(axes.flat)


def _finish_selector(ax: Any, name: str, xlabel: str, ylabel: str, legend: str, log_floor: float | None = 1e-4) -> None:
    ax.set_yscale("log")
    if log_floor is not None:
        ax.set_ylim(log_floor, 1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{name} selector", fontsize=14, pad=22)
    ax.legend(fontsize=10, loc=legend)


def _with_band(ax: Any, x: np.ndarray, kept: np.ndarray, n: int, label: str, scale: float = 1.0, **style: Any) -> None:
    """scale · kept/n against x, with its Clopper–Pearson band."""
    line, = ax.plot(x, scale * kept / max(n, 1), lw=2, label=label, **style)
    low, high = clopper_pearson_arrays(kept, n)
    ax.fill_between(x, np.maximum(scale * low, 1e-5 * scale), scale * high, color=line.get_color(), alpha=0.2, lw=0)


def _kept_above(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of `scores` are at or above each threshold."""
    ordered = np.sort(scores)
    return len(ordered) - np.searchsorted(ordered, thresholds, side="left")


def _rate_with_band(thresholds: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, k: int,
                    stream: dict[str, dict[str, Any]], names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The summed rate of the classes `names` kept by cuts on score k, with the Clopper–Pearson deviations
    of the classes added in quadrature."""
    class_names = list(stream)
    total, low, high = np.zeros(len(thresholds)), np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for name in names:
        mine = probabilities[labels == class_names.index(name), k]
        kept = _kept_above(mine, thresholds)
        lo, hi = clopper_pearson_arrays(kept, len(mine))
        rate = stream[name]["rate_hz"]
        total += rate * kept / max(len(mine), 1)
        low += (rate * (kept / max(len(mine), 1) - lo)) ** 2
        high += (rate * (hi - kept / max(len(mine), 1))) ** 2
    return total, np.maximum(total - np.sqrt(low), 0.0), total + np.sqrt(high)


def roc_curves(scores: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], aucs: dict[str, dict[str, float]],
               path: Path) -> Path:
    """One panel per class: background acceptance (log) against signal efficiency, one curve per model,
    with the binomial band of the acceptance."""
    fig, axes = _selector_panels(class_names)
    for k, (name, ax) in enumerate(zip(class_names, axes)):
        for model, (probabilities, labels) in scores.items():
            fpr, tpr, _ = roc_curve(probabilities[:, k], labels == k)
            n_bkg = int(np.sum(labels != k))
            _with_band(ax, tpr[1:], np.round(fpr[1:] * n_bkg), n_bkg, f"{model} (AUC {aucs[model][name]:.3f})")
        ax.set_xlim(0, 1)
        _finish_selector(ax, name, f"{name} efficiency", "background acceptance", "upper left")
    return _save(fig, path)


def rate_roc(scores: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str],
             stream: dict[str, dict[str, Any]], path: Path) -> Path:
    """One panel per selector: the background rate it lets through (Hz, log) against its signal efficiency,
    one curve per model, with the band of the background rate."""
    fig, axes = _selector_panels(class_names)
    thresholds = np.linspace(0.0, 1.0, 401)
    for k, (name, ax) in enumerate(zip(class_names, axes)):
        background = [c for c in class_names if c != name]
        for model, (probabilities, labels) in scores.items():
            signal = probabilities[labels == k, k]
            efficiency = _kept_above(signal, thresholds) / max(len(signal), 1)
            rate, low, high = _rate_with_band(thresholds, probabilities, labels, k, stream, background)
            line, = ax.plot(efficiency, rate, lw=2, label=model)
            floor = 1e-4 * max(rate.max(), 1e-12)
            ax.fill_between(efficiency, np.maximum(low, floor), high, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlim(0, 1)
        _finish_selector(ax, name, f"{name} efficiency", "background rate [Hz]", "upper left", log_floor=None)
    return _save(fig, path)


def confusion(matrices: dict[str, list[list[float]]], class_names: list[str], path: Path) -> Path:
    """The normalised confusion matrices of every model, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.5 * len(matrices), 5.2), squeeze=False)
    for ax, (model, matrix) in zip(axes[0], matrices.items()):
        values = np.asarray(matrix)
        ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white" if v > 0.5 else "black", fontsize=12)
        ax.set_xticks(range(len(class_names)), class_names)
        ax.set_yticks(range(len(class_names)), class_names)
        ax.minorticks_off()
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{model}: normalised confusion", fontsize=13, pad=22)
    return _save(fig, path)


def score_distributions(model: str, probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                        path: Path, weights: np.ndarray | None = None) -> Path:
    """Per selector, its score for the events of each true class (log y): normalised, and below weighted
    by the rate each event stands for (Hz per bin) when `weights` are given."""
    n = len(class_names)
    fig, axes = _selector_panels(class_names, rows=1 if weights is None else 2)
    bins = np.linspace(0.0, 1.0, 41)
    for k, name in enumerate(class_names):
        for c, true in enumerate(class_names):
            rows = labels == c
            if not rows.any():
                continue
            axes[k].hist(probabilities[rows, k], bins=bins, histtype="step", lw=2, density=True, color=f"C{c}",
                         label=f"true {true} ({int(rows.sum())})")
            if weights is not None:
                axes[n + k].hist(probabilities[rows, k], bins=bins, weights=weights[rows], histtype="step", lw=2,
                                 color=f"C{c}", label=f"{true} ({weights[rows].sum():.3g} Hz)")
        _finish_selector(axes[k], name, f"{model}: {name} score", "events (normalised)", "upper center", log_floor=None)
        if weights is not None:
            _finish_selector(axes[n + k], name, f"{model}: {name} score", "rate per bin [Hz]", "upper center", log_floor=None)
    return _save(fig, path)


def efficiency_vs_threshold(model: str, probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                            path: Path, stream: dict[str, dict[str, Any]] | None = None) -> Path:
    """Per selector: the fraction of each true class kept by a cut on its score, against the cut; below,
    when the stream's rates are known, the output rate of each class and in total (Hz)."""
    n = len(class_names)
    fig, axes = _selector_panels(class_names, rows=1 if stream is None else 2)
    thresholds = np.linspace(0.0, 1.0, 201)
    for k, name in enumerate(class_names):
        for c, true in enumerate(class_names):
            chosen = probabilities[labels == c, k]
            if len(chosen):
                role = "signal" if c == k else "background"
                kept = _kept_above(chosen, thresholds)
                _with_band(axes[k], thresholds, kept, len(chosen), f"{true} ({role})", color=f"C{c}")
                if stream is not None:
                    _with_band(axes[n + k], thresholds, kept, len(chosen), f"{true} ({role})",
                               scale=stream[true]["rate_hz"], color=f"C{c}")
        _finish_selector(axes[k], name, f"{model}: cut on the {name} score", "fraction kept", "lower left")
        if stream is not None:
            total, low, high = _rate_with_band(thresholds, probabilities, labels, k, stream, class_names)
            axes[n + k].plot(thresholds, total, lw=2, color="black", label="total output")
            axes[n + k].fill_between(thresholds, np.maximum(low, 1e-5 * total.max()), high, color="black", alpha=0.15, lw=0)
            _finish_selector(axes[n + k], name, f"{model}: cut on the {name} score", "output rate [Hz]", "lower left",
                             log_floor=None)
    return _save(fig, path)


def hlf_distributions(names: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str],
                      path: Path) -> Path:
    """Each high-level feature per class, unscaled, the training sample (dashed) over the test split (solid)."""
    plt = _pyplot()
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    test_hlf = splits["test"][0]
    for f, (name, ax) in enumerate(zip(names, axes.flat)):
        values = test_hlf[:, f]
        lo, hi = np.nanpercentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
        for c, cls in enumerate(class_names):
            for split, style in (("train", "--"), ("test", "-")):
                hlf, labels = splits[split]
                chosen = hlf[labels == c, f]
                if len(chosen):
                    ax.hist(np.clip(chosen, bins[0], bins[-1]), bins=bins, histtype="step", density=True, ls=style,
                            color=f"C{c}", label=f"{cls} {split}")
        ax.set_xlabel(name)
        ax.set_ylabel("events (normalised)", fontsize=11)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower right", fontsize=11, ncol=2)
    return _save(fig, path)


def training_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 5))
    for model, epochs in histories.items():
        x = [e["epoch"] for e in epochs]
        line, = loss_ax.plot(x, [e["val_loss"] for e in epochs], label=f"{model} validation")
        loss_ax.plot(x, [e["train_loss"] for e in epochs], ls="--", color=line.get_color(), label=f"{model} training")
        acc_ax.plot(x, [e["val_accuracy"] for e in epochs], color=line.get_color(), label=model)
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=10)
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel("validation accuracy")
    return _save(fig, path)
