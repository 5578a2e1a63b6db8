"""The features router's models: gradient-boosted trees on cheap per-clip descriptors.

:class:`BoostedTreesModel` classifies the label; :class:`OvrRegressionModel` predicts each
system's OVR (``train.boosted_target: ovr``). Both give class probabilities, so every routing
rule (argmax, deferral margin, cost weight) treats them alike.

Storage: the repo keeps no pickles, and a fitted scikit-learn tree ensemble has no stable
array format. Each model therefore stores its training fold (features and class indices or
OVRs, in safetensors) and its hyperparameters (in the card), and is refitted when
loaded. The fit is deterministic (fixed ``random_state``, no early-stopping split, fewer rows
than scikit-learn's binning subsample), so a loaded model predicts exactly what the trained one
did with the same scikit-learn version (recorded in the card); it costs well under a second
for the hundreds of clips this model is meant for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from serec.models.tabular import softmax

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
DEFAULT_OVR_TEMPERATURE = 0.05


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


@dataclass
class OvrRegressionModel:
    """One ``HistGradientBoostingRegressor`` per system on ``x``: the system's OVR minus the
    clip's mean OVR over the systems (``ovr`` is ``(N, systems)``; NaN cells are left out of
    that system's fit and of the mean).

    Centring cancels what every system shares (how hard the clip is), so each tree ensemble
    learns only how much better or worse its system does on clips like this. Class
    probabilities are ``softmax(predicted OVR / temperature)``: the chance that a system is the
    best if each system's OVR were its prediction plus Gumbel noise of scale ``temperature``
    (OVR units; 0.05 has about DNSMOS's framing jitter, SD ~0.06). Unlike a classifier on the
    argmax label, a clip whose systems are a hair apart teaches almost nothing, and a clip
    where one system wins by a wide margin teaches that margin.
    """

    x: np.ndarray
    ovr: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    temperature: float = DEFAULT_OVR_TEMPERATURE

    def __post_init__(self) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        self.x = np.asarray(self.x, np.float64)
        self.ovr = np.asarray(self.ovr, np.float64).reshape(len(self.x), -1)
        self.params = {**DEFAULT_PARAMS, **self.params}
        self._offsets = np.zeros(self.num_classes)
        self._regressors: list[Any] = []
        with warnings.catch_warnings():  # a clip with no OVR at all: NaN, left out below
            warnings.simplefilter("ignore", RuntimeWarning)
            centred = self.ovr - np.nanmean(self.ovr, axis=1, keepdims=True)
        for system in range(self.num_classes):
            known = np.isfinite(centred[:, system])
            if known.sum() < 2:  # nothing to learn: a constant (the system's mean, or worst)
                self._offsets[system] = (centred[known, system].mean() if known.any()
                                         else -np.inf)
                self._regressors.append(None)
                continue
            regressor = HistGradientBoostingRegressor(early_stopping=False, **self.params)
            with threadpool_limits(THREADS, user_api="openmp"):
                regressor.fit(self.x[known], centred[known, system])
            self._regressors.append(regressor)

    @property
    def num_classes(self) -> int:
        return self.ovr.shape[1]

    def predict_ovr(self, x: np.ndarray) -> np.ndarray:
        """``(N, systems)`` predicted OVR relative to the clip's mean over systems."""
        x = np.asarray(x, np.float64)
        out = np.tile(self._offsets, (len(x), 1))
        if len(x):
            with threadpool_limits(THREADS, user_api="openmp"):
                for system, regressor in enumerate(self._regressors):
                    if regressor is not None:
                        out[:, system] = regressor.predict(x)
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N, systems)`` probabilities that each system is the best (see the class doc)."""
        predicted = self.predict_ovr(x)
        return softmax(np.where(np.isfinite(predicted), predicted, -1e9)
                            / self.temperature)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "ovr": self.ovr}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], params: dict[str, Any],
                     temperature: float) -> OvrRegressionModel:
        return cls(tensors["x"], tensors["ovr"], params, temperature)


def cost_scores(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """What a cost weight trades against seconds per clip: a classifier's probabilities, or
    for an :class:`OvrRegressionModel` (``temperature`` given) ``temperature * log(p)``, its
    predicted OVR up to a per-clip constant (exactly so for one model; for a fold ensemble's
    mean probabilities, a soft maximum of the folds' predictions), so the weight is in OVR
    per second."""
    probs = np.asarray(probs, np.float64)
    if temperature is None:
        return probs
    with np.errstate(divide="ignore"):
        return temperature * np.log(probs)
