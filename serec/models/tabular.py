"""The ``features`` baseline: multinomial logistic regression on the tabular features only.

A linear model, so it is stored as plain arrays (``coef``, ``intercept`` in safetensors, the
scaler in the card) and predicted with numpy; no pickle anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LinearTabularModel:
    """Softmax over ``standardise(x) @ coef.T + intercept``; NaN features count as the mean."""

    coef: np.ndarray        # (classes, features)
    intercept: np.ndarray   # (classes,)
    mean: np.ndarray        # (features,)
    scale: np.ndarray       # (features,)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return standardise(x, self.mean, self.scale)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.standardise(x) @ self.coef.T + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": self.intercept}


def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation, ignoring NaN; constant columns get scale 1."""
    x = np.asarray(x, np.float64)
    if x.shape[1] == 0:
        return np.zeros(0), np.ones(0)
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(x, axis=0)) if len(x) else np.zeros(x.shape[1])
        scale = np.nan_to_num(np.nanstd(x, axis=0)) if len(x) else np.ones(x.shape[1])
    scale[scale < 1e-12] = 1.0
    return mean, scale


def standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(x - mean) / scale`` with missing values set to 0 (the training mean)."""
    z = (np.asarray(x, np.float64) - mean) / scale
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_linear(x: np.ndarray, y: np.ndarray, num_classes: int, c: float = 1.0,
               seed: int = 0) -> LinearTabularModel:
    """Class-balanced L2 logistic regression on standardised features.

    ``y`` holds class indices ``0..num_classes-1``; classes missing from ``y`` get a very low
    intercept so that they are never predicted.
    """
    # imported here: training workers load this module for the scaler and need no sklearn
    from sklearn.linear_model import LogisticRegression

    mean, scale = fit_scaler(x)
    z = standardise(x, mean, scale)
    present = np.unique(y)
    coef = np.zeros((num_classes, z.shape[1]))
    intercept = np.full(num_classes, -1e4)
    if len(present) == 1:
        intercept[present[0]] = 0.0
        return LinearTabularModel(coef, intercept, mean, scale)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    clf.fit(z, y)
    if len(present) == 2:  # sklearn keeps one weight vector for the second class
        coef[present[1]], intercept[present[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[present[0]] = 0.0
    else:
        coef[present], intercept[present] = clf.coef_, clf.intercept_
    return LinearTabularModel(coef, intercept, mean, scale)
