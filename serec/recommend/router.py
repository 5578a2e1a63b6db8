"""The deployed routers: features on the fly, gatekeeper then expert, fold ensembles; or the
boosted features router, or the best single system for every clip, when ``serec evaluate``
chose it on validation (:func:`load_router`).

The gatekeeper ensemble sees every clip; only the clips it does not give to the majority
system reach the expert ensemble (and only they pay for inputs that just the expert uses).
Tabular inputs (CE/KL statistics, and the noisy clip's DNSMOS
when a model was trained with them) are computed from the audio itself, so no run tables are
needed. Clips are cropped to the first ``max_seconds`` for routing (the length the models were
trained on); the enhancer still gets the whole clip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from serec.audio import TARGET_SR
from serec.config import SerecConfig
from serec.evaluate.ensemble import (
    BEST_SINGLE,
    BOOSTED,
    EXPERT,
    GATEKEEPER,
    ROUTER_CHOICE_FILE,
    THRESHOLD_FILE,
    TWO_STAGE,
    SpectrogramCache,
    StageEnsemble,
    TwoStage,
    align_probs,
    predict_stage,
    trained_folds,
)
from serec.evaluate.frontier import cost_weighted_choice, deferring_choice
from serec.features.cekl import CEKL_COLUMNS, cekl_features
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS, audio_features
from serec.label.rule import ALL_FAILED
from serec.models.boosted import cost_scores
from serec.models.card import ovr_temperature, read_card
from serec.runs import SCORES, RunDir

DNSMOS_FEATURES = {"noisy_sig": "sig", "noisy_bak": "bak", "noisy_ovr": "ovr",
                   "noisy_p808": "p808"}


def probability_column(name: str) -> str:
    return f"p_{name}"


def resolve_threshold(run: RunDir, config: SerecConfig) -> tuple[float, str]:
    """``(threshold, where it came from)``: the config, else ``report/threshold.json`` (written
    by ``serec evaluate``), else the mean of the gatekeeper cards' thresholds."""
    if config.recommend.threshold is not None:
        return float(config.recommend.threshold), "config recommend.threshold"
    if run.exists(THRESHOLD_FILE):
        return float(run.read_json(THRESHOLD_FILE)["threshold"]), THRESHOLD_FILE
    folds = trained_folds(run, GATEKEEPER)
    if not folds:
        raise FileNotFoundError(f"{run.path('models', GATEKEEPER)} has no trained folds")
    values = [read_card(run.model_dir(GATEKEEPER, k)).threshold for k in folds]
    return float(np.mean(values)), "gatekeeper cards"


def router_classes(run: RunDir) -> tuple[TwoStage, list[int]]:
    """The two-stage classes from the cards alone (no weights loaded), and the folds used."""
    folds = sorted(set(trained_folds(run, GATEKEEPER)) & set(trained_folds(run, EXPERT)))
    if not folds:
        raise FileNotFoundError(f"{run.root} needs gatekeeper and expert models of the same "
                                "folds; train both stages first")
    gk = [read_card(run.model_dir(GATEKEEPER, k)) for k in folds]
    expert = list(dict.fromkeys(c for k in folds
                                for c in read_card(run.model_dir(EXPERT, k)).classes))
    return TwoStage.of(gk, expert), folds


class Router:
    """Gatekeeper and expert fold ensembles with a fixed threshold and fallback system."""

    def __init__(self, gatekeeper: StageEnsemble, expert: StageEnsemble, threshold: float,
                 fallback: str, max_seconds: float = 10.0, device: str = "cpu") -> None:
        self.gatekeeper = gatekeeper
        self.expert = expert
        self.two_stage = TwoStage.of([m.card for m in gatekeeper.members], expert.classes)
        self.threshold = float(threshold)
        self.fallback = fallback
        self.max_samples = int(max_seconds * TARGET_SR) if math.isfinite(max_seconds) else None
        self.device = device
        needed = set(gatekeeper.features) | set(expert.features)
        unknown = sorted(needed - set(CEKL_COLUMNS) - set(DNSMOS_FEATURES))
        if unknown:
            raise ValueError(f"the router cannot compute the tabular features {unknown}")
        self._dnsmos = None

    @classmethod
    def from_run(cls, run: RunDir, threshold: float, fallback: str, max_seconds: float = 10.0,
                 device: str = "cpu") -> Router:
        _, folds = router_classes(run)
        return cls(StageEnsemble.load(run, GATEKEEPER, folds),
                   StageEnsemble.load(run, EXPERT, folds), threshold, fallback, max_seconds,
                   device)

    @property
    def classes(self) -> list[str]:
        return self.two_stage.classes

    def system_of(self, label: str) -> str:
        return self.fallback if label == ALL_FAILED else label

    def tabular(self, audios: Sequence[np.ndarray],
                columns: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature groups that hold ``columns`` (CE/KL, noisy DNSMOS) per clip, and their
        seconds per clip."""
        cekl = bool(set(columns) & set(CEKL_COLUMNS))
        dnsmos = bool(set(columns) & set(DNSMOS_FEATURES))
        values: dict[str, list[float]] = {}
        seconds = np.zeros(len(audios))
        if not (cekl or dnsmos):
            return pd.DataFrame(index=range(len(audios))), seconds
        for i, audio in enumerate(audios):
            began = time.perf_counter()
            if cekl:
                for name, value in zip(CEKL_COLUMNS, cekl_features(audio), strict=True):
                    values.setdefault(name, []).append(float(value))
            if dnsmos:
                scores = self._dnsmos_model().score(audio)
                for name, field in DNSMOS_FEATURES.items():
                    values.setdefault(name, []).append(float(getattr(scores, field)))
            seconds[i] = time.perf_counter() - began
        return pd.DataFrame(values, index=range(len(audios))), seconds

    def _dnsmos_model(self):
        if self._dnsmos is None:
            from serec.quality.dnsmos import Dnsmos

            self._dnsmos = Dnsmos()
        return self._dnsmos

    def route(self, audios: Sequence[np.ndarray]) -> pd.DataFrame:
        """One row per clip: ``label``, ``system``, ``confidence``, ``routed_to_expert``,
        ``p_<class>`` (expert classes NaN where the gatekeeper decided), and seconds:
        ``features_s`` (CE/KL, DNSMOS), ``spectrogram_s``, ``gatekeeper_s``, ``expert_s`` (all
        folds) and their sum ``router_s``."""
        audios = [np.asarray(a, np.float32)[: self.max_samples] for a in audios]
        n = len(audios)
        tabular, feature_s = self.tabular(audios, self.gatekeeper.features)
        cache = SpectrogramCache(audios)
        gk = predict_stage(self.gatekeeper, cache, tabular, self.device)
        p_major = gk.column(self.two_stage.majority)
        routed = self.two_stage.routed(p_major, self.threshold)
        expert_classes = list(self.two_stage.expert_classes)
        p_expert = np.full((n, len(expert_classes)), np.nan)
        expert_s = np.zeros(n)
        spectrogram_s = cache.seconds.copy()
        rows = np.flatnonzero(routed)
        if len(rows):
            part = cache.subset(rows)
            part_tabular = tabular.iloc[rows].reset_index(drop=True)
            missing = [c for c in self.expert.features if c not in part_tabular]
            if missing:  # features only the expert uses are computed for its clips only
                extra, extra_s = self.tabular(part.audios, missing)
                part_tabular = pd.concat([part_tabular, extra[[c for c in extra
                                                               if c not in part_tabular]]],
                                         axis=1)
                feature_s[rows] += extra_s
            ex = predict_stage(self.expert, part, part_tabular, self.device)
            p_expert[rows] = align_probs(ex.mean, ex.classes, expert_classes)
            expert_s[rows] = ex.seconds.sum(axis=0)
            spectrogram_s[rows] += part.seconds  # settings the gatekeeper did not use
        labels = self.two_stage.decide(p_major, np.nan_to_num(p_expert, nan=0.0),
                                       self.threshold)
        probs = self.two_stage.class_probabilities(p_major, p_expert)
        chosen = np.array([self.classes.index(label) for label in labels], dtype=int)
        out = pd.DataFrame({
            "label": labels.astype(str),
            "system": [self.system_of(str(label)) for label in labels],
            "confidence": probs[np.arange(n), chosen] if n else np.zeros(0),
            "routed_to_expert": routed,
            **{probability_column(c): probs[:, j] for j, c in enumerate(self.classes)},
            "features_s": feature_s, "spectrogram_s": spectrogram_s,
            "gatekeeper_s": gk.seconds.sum(axis=0), "expert_s": expert_s,
        })
        out["router_s"] = out[["features_s", "spectrogram_s", "gatekeeper_s",
                               "expert_s"]].sum(axis=1)
        return out


class FeaturesRouter:
    """The boosted features router: one fold ensemble over every label, on the CE/KL
    statistics and routing descriptors computed from the audio.

    With ``cost_weight`` > 0 it picks ``argmax_s P(s) - cost_weight * seconds(s)`` (seconds:
    each system's mean enhancer seconds per clip, e.g. from the run's ``scores/``), trading
    quality for compute as ``serec evaluate``'s cost-weight sweep does; 0 is the most probable
    label. Else, with ``defer_to`` and ``margin`` > 0 (the margin ``serec evaluate`` chose out
    of fold), it keeps ``defer_to`` unless the most probable label leads it by more than
    ``margin`` (:func:`serec.evaluate.frontier.deferring_choice`).
    """

    def __init__(self, ensemble: StageEnsemble, fallback: str, max_seconds: float = 10.0,
                 cost_weight: float = 0.0,
                 system_seconds: Mapping[str, float] | None = None,
                 defer_to: str | None = None, margin: float = 0.0) -> None:
        unknown = sorted(set(ensemble.features) - set(AUDIO_FEATURE_COLUMNS))
        if unknown:
            raise ValueError(f"the features router cannot compute the features {unknown}")
        if cost_weight < 0:
            raise ValueError(f"cost_weight must be >= 0, got {cost_weight}")
        self.ensemble = ensemble
        self.fallback = fallback
        self.max_samples = int(max_seconds * TARGET_SR) if math.isfinite(max_seconds) else None
        self.cost_weight = float(cost_weight)
        if defer_to is not None and defer_to not in self.classes:
            raise ValueError(f"cannot defer to {defer_to!r}: not a class of the router "
                             f"({', '.join(self.classes)})")
        self.defer_to = defer_to
        self.margin = float(margin)
        seconds = system_seconds or {}
        self.class_seconds = np.array([float(seconds.get(self.system_of(c), 0.0))
                                       for c in self.classes])

    @classmethod
    def from_run(cls, run: RunDir, fallback: str, max_seconds: float = 10.0,
                 cost_weight: float = 0.0, defer_to: str | None = None,
                 margin: float = 0.0) -> FeaturesRouter:
        """Every trained fold of the ``boosted`` stage; with a cost weight, each system's
        mean seconds per clip from the run's ``scores/``."""
        seconds = None
        if cost_weight:
            scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
            seconds = scores.groupby("system")["seconds"].mean().to_dict()
        return cls(StageEnsemble.load(run, BOOSTED), fallback, max_seconds, cost_weight,
                   seconds, defer_to, margin)

    @property
    def classes(self) -> list[str]:
        return list(self.ensemble.classes)

    def system_of(self, label: str) -> str:
        return self.fallback if label == ALL_FAILED else label

    def choose(self, probs: np.ndarray) -> np.ndarray:
        """The class index per row of ``probs`` (see the class doc)."""
        if self.cost_weight or self.defer_to is None or self.margin <= 0:
            scores = cost_scores(probs, ovr_temperature(m.card for m in self.ensemble.members))
            return cost_weighted_choice(scores, self.class_seconds, self.cost_weight)
        return deferring_choice(probs, self.classes.index(self.defer_to), self.margin)

    def route(self, audios: Sequence[np.ndarray]) -> pd.DataFrame:
        """One row per clip: ``label``, ``system``, ``confidence`` (its probability),
        ``routed_to_expert`` (always False: one stage), ``p_<class>``, ``features_s``,
        ``model_s`` (all folds) and their sum ``router_s``."""
        audios = [np.asarray(a, np.float32)[: self.max_samples] for a in audios]
        n = len(audios)
        values = np.zeros((n, len(AUDIO_FEATURE_COLUMNS)))
        features_s = np.zeros(n)
        for i, audio in enumerate(audios):
            began = time.perf_counter()
            values[i] = audio_features(audio)
            features_s[i] = time.perf_counter() - began
        tabular = pd.DataFrame(values, columns=list(AUDIO_FEATURE_COLUMNS))
        prediction = predict_stage(self.ensemble, SpectrogramCache(audios), tabular)
        probs = prediction.mean
        chosen = self.choose(probs) if n else np.zeros(0, int)
        labels = np.asarray(self.classes, dtype=object)[chosen]
        out = pd.DataFrame({
            "label": labels.astype(str),
            "system": [self.system_of(str(label)) for label in labels],
            "confidence": probs[np.arange(n), chosen] if n else np.zeros(0),
            "routed_to_expert": np.zeros(n, bool),
            **{probability_column(c): probs[:, j] for j, c in enumerate(self.classes)},
            "features_s": features_s, "model_s": prediction.seconds.sum(axis=0),
        })
        out["router_s"] = out["features_s"] + out["model_s"]
        return out


class SingleSystemRouter:
    """Every clip to one system, at no routing cost: what ``recommend`` deploys when no router
    beat the best single system on validation."""

    def __init__(self, system: str, classes: Sequence[str] = ()) -> None:
        self.system = system
        self._classes = list(dict.fromkeys([*classes, system]))

    @property
    def classes(self) -> list[str]:
        """The run's labels (for the same probability columns as its routers) and ``system``."""
        return self._classes

    def route(self, audios: Sequence[np.ndarray]) -> pd.DataFrame:
        """The decision columns of the other routers: ``system`` for every clip."""
        n = len(audios)
        return pd.DataFrame({"label": [self.system] * n, "system": [self.system] * n,
                             "confidence": np.ones(n), "routed_to_expert": np.zeros(n, bool),
                             **{probability_column(c): np.full(n, float(c == self.system))
                                for c in self.classes},
                             "features_s": np.zeros(n), "model_s": np.zeros(n),
                             "router_s": np.zeros(n)})


@dataclass(frozen=True)
class Deployment:
    """What ``recommend`` runs: ``router`` (``boosted``, ``best_single`` or ``two_stage``),
    the best single ``system`` for ``best_single``, and the boosted router's deferral
    (``defer_to`` and ``margin``; margin 0: the most probable label)."""

    router: str
    system: str | None = None
    defer_to: str | None = None
    margin: float = 0.0


def deployment(run: RunDir) -> Deployment:
    """What ``serec evaluate`` chose on validation (``report/router_choice.json``, read once):
    the boosted router when its folds exist, the best single system, or else the two-stage
    router."""
    if run.exists(ROUTER_CHOICE_FILE):
        choice = run.read_json(ROUTER_CHOICE_FILE)
        chosen = str(choice.get("router", TWO_STAGE))
        if chosen == BEST_SINGLE:
            return Deployment(chosen, system=str(choice["system"]))
        if chosen == BOOSTED and trained_folds(run, BOOSTED):
            return Deployment(chosen, defer_to=choice.get("defer_to"),
                              margin=float(choice.get("margin") or 0.0))
    return Deployment(TWO_STAGE)


def chosen_router(run: RunDir) -> str:
    """``boosted``, ``best_single`` or ``two_stage``: see :func:`deployment`."""
    return deployment(run).router


def deployed_system(run: RunDir) -> str | None:
    """The system every clip goes to when evaluate deployed the best single system, else
    None."""
    return deployment(run).system


def load_router(run: RunDir, threshold: float, fallback: str, max_seconds: float = 10.0,
                device: str = "cpu") -> Router | FeaturesRouter | SingleSystemRouter:
    """The router ``serec evaluate`` chose for this run on validation (see
    :func:`deployment`); all answer ``route(audios)`` with the same decision columns."""
    chosen = deployment(run)
    if chosen.system is not None:
        return SingleSystemRouter(chosen.system, router_classes(run)[0].classes)
    if chosen.router == BOOSTED:
        return FeaturesRouter.from_run(run, fallback, max_seconds, defer_to=chosen.defer_to,
                                       margin=chosen.margin)
    return Router.from_run(run, threshold, fallback, max_seconds, device)
