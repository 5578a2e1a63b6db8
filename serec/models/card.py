"""Self-describing checkpoints: ``model.safetensors`` + ``card.json`` in one folder.

The card holds everything needed to rebuild the exact model and feed it without the training
code's state or the model hub: stage, class names (logit order), backbone name and its full
``ASTConfig`` dict, feature-extractor settings, pooling, tabular feature names with the scaler
fitted on the training fold, the gatekeeper's decision threshold, fold, validation metrics and
the serec version. Nothing is pickled; the folder may live on any ``RunDir`` filesystem.

Gatekeeper cards name the majority system in ``positive_class``: a clip goes to that system when
``P(positive_class) >= threshold``, otherwise to the expert.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import load as load_numpy
from safetensors.numpy import save as save_numpy
from safetensors.torch import load as load_torch
from safetensors.torch import save as save_torch

from serec import __version__
from serec.models.backbone import backbone_from_config
from serec.models.boosted import DEFAULT_OVR_TEMPERATURE, BoostedTreesModel, OvrRegressionModel
from serec.models.heads import ASTClassifier
from serec.models.tabular import LinearTabularModel
from serec.runs import RunDir

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
KIND_AST = "ast"
KIND_LINEAR = "linear"
KIND_BOOSTED = "boosted"  # weights file: the training fold; params: train_config["params"]
# the same, with per-system OVRs; train_config["temperature"] too
KIND_BOOSTED_OVR = "boosted_ovr"
FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """What a checkpoint folder holds; see the module docstring."""

    stage: str
    classes: list[str]
    kind: str = KIND_AST
    fold: int | None = None
    features: list[str] = field(default_factory=list)
    scaler_mean: list[float] = field(default_factory=list)
    scaler_scale: list[float] = field(default_factory=list)
    threshold: float = 0.5
    positive_class: str | None = None
    backbone: str | None = None
    backbone_config: dict[str, Any] | None = None
    extractor: dict[str, Any] | None = None
    max_length: int | None = None
    pooling: str | None = None
    head_hidden: int | None = None
    dropout: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    serec_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"card has unknown key(s) {unknown}")
        return cls(**data)

    @property
    def scaler(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.scaler_mean, np.float64),
                np.asarray(self.scaler_scale, np.float64))


Model = ASTClassifier | LinearTabularModel | BoostedTreesModel | OvrRegressionModel
TREE_MODELS = (BoostedTreesModel, OvrRegressionModel)


def card_temperature(card: ModelCard) -> float:
    """The softmax temperature an OVR model's card records (the default for older cards)."""
    return float(card.train_config.get("temperature", DEFAULT_OVR_TEMPERATURE))


def ovr_temperature(cards: Iterable[ModelCard]) -> float | None:
    """The softmax temperature of a fold ensemble of OVR models (None for any other kind)."""
    cards = list(cards)
    if not cards or any(c.kind != KIND_BOOSTED_OVR for c in cards):
        return None
    temperatures = {card_temperature(c) for c in cards}
    if len(temperatures) != 1:
        raise ValueError(f"the folds' OVR models disagree on their temperature: {temperatures}")
    return temperatures.pop()


def build_model(card: ModelCard) -> Model:
    """The architecture a card describes, with freshly initialised weights."""
    if card.kind == KIND_LINEAR:
        n, d = len(card.classes), len(card.features)
        mean, scale = card.scaler
        return LinearTabularModel(np.zeros((n, d)), np.zeros(n), mean, scale)
    if card.kind != KIND_AST:
        raise ValueError(f"unknown model kind '{card.kind}'")
    if card.backbone_config is None or card.head_hidden is None or card.dropout is None:
        raise ValueError("an AST card needs backbone_config, head_hidden and dropout")
    return ASTClassifier(backbone_from_config(card.backbone_config), len(card.classes),
                         tabular_dim=len(card.features), head_hidden=card.head_hidden,
                         dropout=card.dropout)


def model_bytes(model: Model) -> bytes:
    """The weights as safetensors bytes."""
    if isinstance(model, (LinearTabularModel, *TREE_MODELS)):
        return save_numpy({k: np.ascontiguousarray(v) for k, v in model.tensors().items()})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_torch(state)


def save_model(model: Model, card: ModelCard, model_dir: str) -> None:
    """Write ``model.safetensors`` and ``card.json`` into ``model_dir`` (local path or URI)."""
    folder = RunDir.of(model_dir)
    folder.write_bytes(WEIGHTS_FILE, model_bytes(model))
    folder.write_bytes(CARD_FILE, json.dumps(card.to_dict(), indent=2).encode())


def read_card(model_dir: str) -> ModelCard:
    return ModelCard.from_dict(json.loads(RunDir.of(model_dir).read_bytes(CARD_FILE)))


def load_model(model_dir: str) -> tuple[Model, ModelCard]:
    """Rebuild the model a folder describes and load its weights (eval mode for AST)."""
    folder = RunDir.of(model_dir)
    card = read_card(model_dir)
    if card.kind == KIND_BOOSTED:
        tensors = load_numpy(folder.read_bytes(WEIGHTS_FILE))
        return BoostedTreesModel.from_tensors(tensors, len(card.classes),
                                              card.train_config.get("params", {})), card
    if card.kind == KIND_BOOSTED_OVR:
        tensors = load_numpy(folder.read_bytes(WEIGHTS_FILE))
        return OvrRegressionModel.from_tensors(
            tensors, card.train_config.get("params", {}), card_temperature(card)), card
    model = build_model(card)
    data = folder.read_bytes(WEIGHTS_FILE)
    if isinstance(model, LinearTabularModel):
        tensors = load_numpy(data)
        model.coef, model.intercept = tensors["coef"], tensors["intercept"]
        return model, card
    model.load_state_dict(load_torch(data), strict=True)
    model.eval()
    return model, card

