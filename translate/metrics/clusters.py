"""Cluster accuracy: how well unsupervised categories (InfoGAN's categorical code, a k-means
clustering) match true labels, once each category is matched to one label.

The matching maximises the number of agreements (the Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``; Kuhn 1955), as in the clustering evaluations of
InfoGAN (Chen et al. 2016, Sec. 5.1: "5% error" on MNIST) and unsupervised deep clustering
papers after it. A model that learnt nothing scores about the largest class's share.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(predicted: Any, labels: Any) -> np.ndarray:
    """(categories, classes) counts of each (predicted category, true label) pair."""
    p = np.asarray(predicted, dtype=np.int64).ravel()
    t = np.asarray(labels, dtype=np.int64).ravel()
    if p.shape != t.shape or p.size == 0:
        raise ValueError(f"needs as many predictions as labels (> 0), got {p.size} and {t.size}")
    if p.min() < 0 or t.min() < 0:
        raise ValueError("categories and labels must be non-negative integers")
    counts = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    return counts


def matching(predicted: Any, labels: Any) -> dict[int, int]:
    """The one-to-one map category -> label with the most agreements (unmatched categories,
    when there are more categories than labels, are left out)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-confusion(predicted, labels))
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(predicted: Any, labels: Any) -> float:
    """The share of items whose category maps to their label under the best one-to-one map."""
    counts = confusion(predicted, labels)
    matched = sum(counts[r, c] for r, c in matching(predicted, labels).items())
    return float(matched / counts.sum())
