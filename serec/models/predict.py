"""Class probabilities from a loaded checkpoint (AST or linear), for evaluation and routing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from serec.models.backbone import extractor_from_params
from serec.models.card import Model, ModelCard
from serec.models.heads import ASTClassifier
from serec.models.inputs import spectrograms
from serec.models.tabular import LinearTabularModel, softmax, standardise


@torch.no_grad()
def batched_logits(model: ASTClassifier, values: np.ndarray, n_frames: np.ndarray,
                   tabular: np.ndarray | None = None, batch_size: int = 32,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Logits ``(N, classes)`` for precomputed inputs; ``tabular`` must be standardised."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(values), batch_size):
            part = slice(start, start + batch_size)
            tab = None if tabular is None else torch.as_tensor(tabular[part], dtype=torch.float32,
                                                              device=device)
            logits = model(torch.as_tensor(values[part], device=device),
                           torch.as_tensor(n_frames[part], device=device), tab)
            out.append(logits.float().cpu().numpy())
    finally:
        model.train(was_training)
    n_classes = model.head[-1].out_features
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


def predict_proba(model: Model, card: ModelCard, audios: Sequence[np.ndarray] | None = None,
                  tabular: np.ndarray | None = None, batch_size: int = 16,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """``(N, len(card.classes))`` probabilities for 16 kHz clips and/or raw tabular rows.

    ``tabular`` holds the card's ``features`` columns in order, unscaled (the card's scaler is
    applied here); AST models need ``audios``, linear models only ``tabular``.
    """
    if card.features:
        if tabular is None:
            raise ValueError(f"this model needs the tabular features {card.features}")
        tabular = np.asarray(tabular, np.float64)
        if tabular.ndim != 2 or tabular.shape[1] != len(card.features):
            raise ValueError(f"tabular must have shape (N, {len(card.features)})")
    if isinstance(model, LinearTabularModel):
        return model.predict_proba(tabular)
    if audios is None or card.extractor is None:
        raise ValueError("an AST model needs audio clips (and a card with extractor settings)")
    values, n_frames = spectrograms(audios, extractor_from_params(card.extractor))
    scaled = standardise(tabular, *card.scaler) if card.features else None
    return softmax(batched_logits(model, values, n_frames, scaled, batch_size, device))
