"""Evaluation plots (matplotlib with mplhep's HEP styling), written as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from topotrigger._optional import require
from topotrigger.evaluate.metrics import roc_curve


def _pyplot() -> Any:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    hep = require("mplhep")
    import matplotlib.pyplot as plt

    hep.style.use("ROOT")
    plt.rcParams.update({"figure.dpi": 80, "font.size": 14})
    return plt


def roc_curves(scores: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], aucs: dict[str, dict[str, float]],
               path: Path) -> Path:
    """One panel per class: background acceptance (log) against signal efficiency, one curve per model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(class_names), figsize=(6 * len(class_names), 5.5), squeeze=False)
    for k, (name, ax) in enumerate(zip(class_names, axes[0])):
        for model, (probabilities, labels) in scores.items():
            fpr, tpr, _ = roc_curve(probabilities[:, k], labels == k)
            ax.plot(tpr[1:], fpr[1:], label=f"{model} (AUC {aucs[model][name]:.3f})")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{name} efficiency")
        ax.set_ylabel("background acceptance")
        ax.set_title(f"{name} selector", fontsize=14)
        ax.legend(fontsize=10, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion(matrix: list[list[float]], class_names: list[str], model: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    values = np.asarray(matrix)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white" if v > 0.5 else "black", fontsize=12)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.minorticks_off()
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{model}: normalised confusion", fontsize=13)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 5))
    for model, epochs in histories.items():
        x = [e["epoch"] for e in epochs]
        line, = loss_ax.plot(x, [e["val_loss"] for e in epochs], label=f"{model} validation")
        loss_ax.plot(x, [e["train_loss"] for e in epochs], ls="--", color=line.get_color(), label=f"{model} training")
        acc_ax.plot(x, [e["val_accuracy"] for e in epochs], color=line.get_color(), label=model)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy")
    loss_ax.legend(fontsize=10)
    acc_ax.legend(fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
