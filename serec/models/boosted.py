"""The features router's model: gradient-boosted trees on cheap per-clip descriptors.

Storage: the repo keeps no pickles, and a fitted scikit-learn tree ensemble has no stable
array format. A :class:`BoostedTreesModel` therefore stores its training fold (features and
class indices, in safetensors) and its hyperparameters (in the card), and is refitted when
loaded. The fit is deterministic (fixed ``random_state``, no early-stopping split, fewer rows
than scikit-learn's binning subsample), so a loaded model predicts exactly what the trained one
did with the same scikit-learn version (recorded in the card); it costs well under a second
for the hundreds of clips this model is meant for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

# Hundreds of rows: one OpenMP thread is fastest, and the CPUs are shared with Ray workers
# (measured on a loaded 2-core machine: 300 clips, 3.9 s on one thread, 124 s on all).
THREADS = 1
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 150,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 5,
    "l2_regularization": 1.0,
    "random_state": 0,
}


@dataclass
class BoostedTreesModel:
    """Class-balanced ``HistGradientBoostingClassifier`` fitted on ``x`` (NaN allowed) and
    ``y`` (class indices ``0..num_classes-1``); classes absent from ``y`` get probability 0.

    ``w`` (optional) weighs the rows, e.g. ``1/|tied set|`` for a clip expanded into one row
    per tied class; the class balance then uses the weighted class counts.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    params: dict[str, Any] = field(default_factory=dict)
    w: np.ndarray | None = None

    def __post_init__(self) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.x = np.asarray(self.x, np.float64)
        self.y = np.asarray(self.y, np.int64)
        self.params = {**DEFAULT_PARAMS, **self.params}
        self.present = np.unique(self.y)
        self._classifier = None
        if len(self.present) > 1:
            weights = None
            if self.w is not None:
                self.w = np.asarray(self.w, np.float64)
                totals = np.bincount(self.y, weights=self.w, minlength=self.num_classes)
                weights = self.w * (self.w.sum() / (len(self.present) * totals[self.y]))
            self._classifier = HistGradientBoostingClassifier(
                class_weight="balanced" if weights is None else None, early_stopping=False,
                **self.params)
            with threadpool_limits(THREADS, user_api="openmp"):
                self._classifier.fit(self.x, self.y, sample_weight=weights)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N, num_classes)`` probabilities."""
        x = np.asarray(x, np.float64)
        probs = np.zeros((len(x), self.num_classes))
        if self._classifier is None:
            probs[:, self.present[0]] = 1.0
        elif len(x):
            with threadpool_limits(THREADS, user_api="openmp"):
                probs[:, self._classifier.classes_] = self._classifier.predict_proba(x)
        return probs

    def tensors(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "y": self.y, **({} if self.w is None else {"w": self.w})}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], num_classes: int,
                     params: dict[str, Any]) -> BoostedTreesModel:
        return cls(tensors["x"], tensors["y"], num_classes, params, tensors.get("w"))
