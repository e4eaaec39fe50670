"""Classification metrics and temperature scaling (calibration)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Rows are true labels, columns predicted labels."""
    counts = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).tolist()


def macro_f1(confusion: list[list[int]]) -> float:
    scores = []
    for k in range(len(confusion)):
        tp = confusion[k][k]
        predicted = sum(row[k] for row in confusion)
        actual = sum(confusion[k])
        denom = predicted + actual
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE over `bins` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n."""
    confidence, preds = probs.max(dim=1)
    correct = (preds == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            gap = (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
            ece += gap * in_bin.float().mean()
    return float(ece)


def macro_recall(confusion: list[list[int]]) -> float:
    """Recall averaged over the classes that occur (SemEval's "average recall")."""
    recalls = [row[k] / sum(row) for k, row in enumerate(confusion) if sum(row)]
    return sum(recalls) / len(recalls) if recalls else 0.0


def classification_report(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> dict[str, Any]:
    """accuracy, f1 (macro), recall (macro), ece (15 bins), confusion matrix, n, nll."""
    num_classes = logits.size(1)
    probs = torch.softmax(logits / temperature, dim=1)
    preds = probs.argmax(dim=1)
    confusion = confusion_matrix(labels, preds, num_classes)
    return {
        "accuracy": float((preds == labels).float().mean()),
        "f1": macro_f1(confusion),
        "recall": macro_recall(confusion),
        "ece": expected_calibration_error(probs, labels),
        "nll": float(torch.nn.functional.cross_entropy(logits / temperature, labels)),
        "confusion_matrix": confusion,
        "n": int(labels.numel()),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising NLL of softmax(logits / T) (Guo et al. 2017, temperature scaling)."""
    log_t = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    logits, labels = logits.detach().float(), labels.detach()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def cross_fitted_ece(logits: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """ECE after temperature scaling, with T fitted on one half and measured on the other.

    Fitting and measuring on the same reviews would flatter the calibration.
    """
    if len(labels) < 4:
        return classification_report(logits, labels, fit_temperature(logits, labels))["ece"]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    total = 0.0
    for fit_idx, test_idx in (halves, halves[::-1]):
        t = fit_temperature(logits[fit_idx], labels[fit_idx])
        probs = torch.softmax(logits[test_idx] / t, dim=1)
        total += expected_calibration_error(probs, labels[test_idx]) * len(test_idx)
    return total / len(labels)


# Length bands (tokens before truncation) for per-length reports: one-liners, paragraphs, reviews.
LENGTH_BANDS = (("<=20", 0, 20), ("21-100", 21, 100), (">100", 101, 1 << 62))


def summary_row(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> dict[str, Any]:
    """n, accuracy, f1, recall, ece, nll: one table row (no confusion matrix)."""
    report = classification_report(logits, labels, temperature)
    return {k: report[k] for k in ("n", "accuracy", "f1", "recall", "ece", "nll")}


def rows_by_length(
    logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, temperature: float
) -> dict[str, dict[str, Any]]:
    """`summary_row` per length band that holds any examples."""
    rows = {}
    for name, lo, hi in LENGTH_BANDS:
        mask = (lengths >= lo) & (lengths <= hi)
        if mask.any():
            rows[name] = summary_row(logits[mask], labels[mask], temperature)
    return rows


def rows_by_key(
    logits: torch.Tensor, labels: torch.Tensor, keys: list[str], temperature: float
) -> dict[str, dict[str, Any]]:
    """`summary_row` per distinct non-empty key (a domain, say), in sorted order."""
    rows = {}
    for key in sorted(set(keys) - {""}):
        mask = torch.tensor([k == key for k in keys])
        rows[key] = summary_row(logits[mask], labels[mask], temperature)
    return rows


def restrict_to_present(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Logits and labels over only the classes `labels` uses, and those classes' indices.

    A set labelled in fewer classes than the model has (IMDB's positive/negative scored by a
    negative/neutral/positive model) is read as the model's choice among the set's classes:
    positive vs negative probability, renormalised. Its accuracy is then binary accuracy.
    """
    classes = sorted(set(labels.tolist()))
    if len(classes) == logits.size(1):
        return logits, labels, classes
    remap = torch.full((logits.size(1),), -1, dtype=torch.long)
    remap[classes] = torch.arange(len(classes))
    return logits[:, classes], remap[labels], classes
