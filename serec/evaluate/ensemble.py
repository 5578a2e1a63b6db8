"""Fold ensembles of trained stages and the two-stage (gatekeeper -> expert) decision.

A stage's fold ensemble averages class probabilities over its trained folds. The two-stage
pipeline sends a clip to the majority system when the (mean) gatekeeper probability of the
majority is at least the threshold, otherwise to the expert's most probable class. As a
probability table over all classes that is ``P(majority) = p`` and
``P(c) = (1 - p) * P_expert(c)`` for the expert's classes.

Spectrograms depend only on a card's extractor settings, so they are computed once per setting
for a set of clips and shared by every fold and stage that uses it (:class:`SpectrogramCache`).
Every prediction also returns the seconds it cost per clip, which is the router's compute.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from serec.models.backbone import extractor_from_params
from serec.models.card import CARD_FILE, TREE_MODELS, Model, ModelCard, load_model
from serec.models.inputs import spectrograms
from serec.models.predict import batched_logits
from serec.models.tabular import LinearTabularModel, softmax, standardise
from serec.runs import MODELS, REPORT, RunDir

THRESHOLD_FILE = f"{REPORT}/threshold.json"  # the calibrated gatekeeper threshold
ROUTER_CHOICE_FILE = f"{REPORT}/router_choice.json"  # the router chosen on validation
TWO_STAGE = "two_stage"  # the gatekeeper -> expert router, as named in that choice
BEST_SINGLE = "best_single"  # that choice when no router beat the best single system
GATEKEEPER = "gatekeeper"
EXPERT = "expert"
FULL = "full"
FEATURES_STAGE = "features"
BOOSTED = "boosted"  # the features router (gradient-boosted trees on routing descriptors)
_FOLD_DIR = re.compile(r"^fold_(\d+)$")


def trained_folds(run: RunDir, stage: str) -> list[int]:
    """Folds of ``stage`` that have a checkpoint card under ``models/<stage>/fold_<k>/``."""
    fs, base = run.filesystem
    selector = pafs.FileSelector(f"{base}/{MODELS}/{stage}", allow_not_found=True)
    folds = []
    for info in fs.get_file_info(selector):
        match = _FOLD_DIR.match(info.base_name)
        if (info.type == pafs.FileType.Directory and match
                and run.exists(MODELS, stage, info.base_name, CARD_FILE)):
            folds.append(int(match.group(1)))
    return sorted(folds)


@dataclass
class FoldModel:
    """One fold's checkpoint of one stage."""

    fold: int
    model: Model
    card: ModelCard


@dataclass
class StageEnsemble:
    """The trained folds of one stage; ``classes`` is the union of their classes, in order."""

    stage: str
    members: list[FoldModel]
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError(f"stage '{self.stage}' has no trained folds")
        if not self.classes:
            self.classes = list(dict.fromkeys(c for m in self.members for c in m.card.classes))

    @classmethod
    def load(cls, run: RunDir, stage: str, folds: Sequence[int] | None = None) -> StageEnsemble:
        """Load ``folds`` (default: every trained fold) of ``stage`` from the run."""
        available = trained_folds(run, stage)
        wanted = available if folds is None else list(folds)
        missing = sorted(set(wanted) - set(available))
        if missing or not wanted:
            raise FileNotFoundError(f"{run.path(MODELS, stage)} has no trained fold(s) "
                                    f"{missing or ''}; train the '{stage}' stage first")
        members = []
        for fold in wanted:
            model, card = load_model(run.model_dir(stage, fold))
            members.append(FoldModel(fold, model, card))
        return cls(stage, members)

    @property
    def folds(self) -> list[int]:
        return [m.fold for m in self.members]

    @property
    def features(self) -> list[str]:
        """Tabular columns any member needs."""
        return list(dict.fromkeys(f for m in self.members for f in m.card.features))

    def subset(self, folds: Sequence[int]) -> StageEnsemble:
        return StageEnsemble(self.stage, [m for m in self.members if m.fold in set(folds)],
                             list(self.classes))


class SpectrogramCache:
    """AST inputs of one list of clips, computed once per extractor setting."""

    def __init__(self, audios: Sequence[np.ndarray], batch_size: int = 16) -> None:
        self.audios = list(audios)
        self.batch_size = batch_size
        self._inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.seconds = np.zeros(len(self.audios))

    def subset(self, rows: np.ndarray) -> SpectrogramCache:
        """The cache of some of the clips, reusing what is computed (at no new cost)."""
        rows = np.asarray(rows)
        part = SpectrogramCache([self.audios[i] for i in rows], self.batch_size)
        part._inputs = {k: (v[rows], n[rows]) for k, (v, n) in self._inputs.items()}
        return part

    def get(self, params: dict) -> tuple[np.ndarray, np.ndarray]:
        key = repr(sorted(params.items()))
        if key not in self._inputs:
            extractor = extractor_from_params(params)
            values, frames = [], []
            for start in range(0, len(self.audios), self.batch_size):
                part = self.audios[start:start + self.batch_size]
                began = time.perf_counter()
                v, n = spectrograms(part, extractor)
                self.seconds[start:start + len(part)] += (time.perf_counter() - began) / len(part)
                values.append(v)
                frames.append(n)
            if values:
                self._inputs[key] = (np.concatenate(values), np.concatenate(frames))
            else:
                self._inputs[key] = spectrograms([], extractor)
        return self._inputs[key]


def tabular_inputs(card: ModelCard, tabular: pd.DataFrame | None, n: int) -> np.ndarray | None:
    """The card's feature columns from ``tabular`` (raw values), or None if it needs none."""
    if not card.features:
        return None
    if tabular is None:
        raise ValueError(f"the {card.stage} model needs tabular features {card.features}")
    missing = [c for c in card.features if c not in tabular]
    if missing:
        raise ValueError(f"the {card.stage} model needs tabular features {missing} "
                         f"that the inputs lack")
    values = tabular[card.features].to_numpy(np.float64)
    if len(values) != n:
        raise ValueError(f"{len(values)} tabular rows for {n} clips")
    return values


def member_proba(member: FoldModel, cache: SpectrogramCache, tabular: pd.DataFrame | None,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes of the card), model seconds per clip (N,))``.

    Batches are padded to the extractor's ``max_length``, so every clip of a batch costs the
    same and a batch's time is split evenly.
    """
    card, n = member.card, len(cache.audios)
    rows = tabular_inputs(card, tabular, n)
    seconds = np.zeros(n)
    if isinstance(member.model, (LinearTabularModel, *TREE_MODELS)):
        began = time.perf_counter()
        probs = member.model.predict_proba(rows)
        seconds[:] = (time.perf_counter() - began) / max(n, 1)
        return probs, seconds
    if card.extractor is None:
        raise ValueError(f"the {card.stage} card of fold {member.fold} has no extractor settings")
    values, frames = cache.get(card.extractor)
    scaled = standardise(rows, *card.scaler) if rows is not None else None
    parts = []
    for start in range(0, n, cache.batch_size):
        part = slice(start, start + cache.batch_size)
        began = time.perf_counter()
        logits = batched_logits(member.model, values[part], frames[part],
                                None if scaled is None else scaled[part],
                                batch_size=cache.batch_size, device=device)
        seconds[part] = (time.perf_counter() - began) / len(values[part])
        parts.append(logits)
    logits = np.concatenate(parts) if parts else np.zeros((0, len(card.classes)), np.float32)
    return softmax(logits.astype(np.float64)), seconds


def align_probs(probs: np.ndarray, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Reorder the last axis from ``source`` classes to ``target`` classes (absent ones: 0)."""
    probs = np.asarray(probs, np.float64)
    out = np.zeros((*probs.shape[:-1], len(target)))
    for j, name in enumerate(target):
        if name in source:
            out[..., j] = probs[..., list(source).index(name)]
    return out


@dataclass
class StagePrediction:
    """Per-fold probabilities ``(folds, N, classes)`` aligned to ``classes``, and seconds."""

    classes: list[str]
    folds: list[int]
    probs: np.ndarray
    seconds: np.ndarray  # (folds, N) model seconds per clip

    @property
    def mean(self) -> np.ndarray:
        """The fold ensemble: mean probabilities over folds, ``(N, classes)``."""
        return self.probs.mean(axis=0)

    def fold(self, fold: int) -> np.ndarray:
        return self.probs[self.folds.index(fold)]

    def column(self, name: str, probs: np.ndarray | None = None) -> np.ndarray:
        probs = self.mean if probs is None else probs
        return probs[..., self.classes.index(name)]


def predict_stage(ensemble: StageEnsemble, cache: SpectrogramCache,
                  tabular: pd.DataFrame | None, device: str = "cpu") -> StagePrediction:
    """Every member's probabilities on the cached clips, aligned to the ensemble's classes."""
    n = len(cache.audios)
    probs = np.zeros((len(ensemble.members), n, len(ensemble.classes)))
    seconds = np.zeros((len(ensemble.members), n))
    for i, member in enumerate(ensemble.members):
        member_probs, seconds[i] = member_proba(member, cache, tabular, device)
        probs[i] = align_probs(member_probs, member.card.classes, ensemble.classes)
    return StagePrediction(list(ensemble.classes), ensemble.folds, probs, seconds)


@dataclass(frozen=True)
class TwoStage:
    """The gatekeeper's majority system and the expert's classes."""

    majority: str
    expert_classes: tuple[str, ...]

    @classmethod
    def of(cls, gatekeeper_cards: Sequence[ModelCard], expert_classes: Sequence[str]) -> TwoStage:
        """From the gatekeeper folds' cards (``positive_class`` is the majority) and the
        expert ensemble's classes."""
        positives = {card.positive_class or card.classes[0] for card in gatekeeper_cards}
        if len(positives) != 1:
            raise ValueError(f"gatekeeper folds disagree on the majority class: {positives}")
        (majority,) = positives
        if majority in expert_classes:
            raise ValueError(f"the expert's classes {list(expert_classes)} include the "
                             f"gatekeeper's majority '{majority}'")
        return cls(majority, tuple(expert_classes))

    @property
    def classes(self) -> list[str]:
        return [self.majority, *self.expert_classes]

    def routed(self, p_majority: np.ndarray, threshold: float) -> np.ndarray:
        """True where the clip goes to the expert (``P(majority) < threshold``)."""
        return np.asarray(p_majority) < threshold

    def expert_choice(self, p_expert: np.ndarray) -> np.ndarray:
        return np.asarray(self.expert_classes, dtype=object)[np.argmax(p_expert, axis=1)]

    def decide(self, p_majority: np.ndarray, p_expert: np.ndarray,
               threshold: float) -> np.ndarray:
        """The chosen class per clip (object array of names)."""
        routed = self.routed(p_majority, threshold)
        chosen = np.full(len(routed), self.majority, dtype=object)
        if routed.any():
            chosen[routed] = self.expert_choice(np.asarray(p_expert)[routed])
        return chosen

    def class_probabilities(self, p_majority: np.ndarray, p_expert: np.ndarray) -> np.ndarray:
        """``(N, len(classes))``: ``[p, (1 - p) * P_expert]``."""
        p = np.asarray(p_majority, np.float64)[:, None]
        return np.concatenate([p, (1.0 - p) * np.asarray(p_expert, np.float64)], axis=1)
