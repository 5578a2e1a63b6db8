"""Classifiers on top of the AST backbone.

Pooling: the clip embedding is the **mean of the final-layer patch tokens whose time position
starts inside the real (non-padding) frames** of the clip; the CLS and distillation tokens are
not used. Short clips are zero-padded to ``max_length`` frames, and averaging only real patches
keeps the padding from diluting the embedding. Attention itself is left unmasked, as in AST
pre-training.

Hybrid models concatenate the pooled embedding with a standardised tabular vector (CE/KL
statistics, optionally the noisy clip's DNSMOS scores) before the head
``LayerNorm -> Linear -> ReLU -> Dropout -> Linear``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import ASTModel

from serec.models.backbone import patch_grid

POOLING = "mean_real_patches"


class ClassifierHead(nn.Sequential):
    """``LayerNorm -> Linear -> ReLU -> Dropout -> Linear``."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class ASTClassifier(nn.Module):
    """AST backbone + masked mean pooling + optional tabular features + classifier head."""

    def __init__(self, backbone: ASTModel, num_classes: int, tabular_dim: int = 0,
                 head_hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.tabular_dim = tabular_dim
        self.head = ClassifierHead(backbone.config.hidden_size + tabular_dim, head_hidden,
                                   num_classes, dropout)
        f_dim, t_dim = patch_grid(backbone.config)
        # time index of every patch token, in the backbone's frequency-major flattening order
        self.register_buffer("patch_time", torch.arange(t_dim).repeat(f_dim), persistent=False)

    def pooled(self, input_values: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """``(B, hidden)`` mean of the patch tokens that start inside each clip's real frames."""
        tokens = self.backbone(input_values=input_values).last_hidden_state[:, 2:]
        starts = self.patch_time * self.backbone.config.time_stride
        real = starts[None, :] < n_frames.clamp(min=1)[:, None].to(starts.device)
        weights = real.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(1) / weights.sum(1)

    def forward(self, input_values: torch.Tensor, n_frames: torch.Tensor,
                tabular: torch.Tensor | None = None) -> torch.Tensor:
        features = self.pooled(input_values, n_frames)
        if self.tabular_dim:
            if tabular is None:
                raise ValueError(f"this model needs a {self.tabular_dim}-dim tabular input")
            features = torch.cat([features, tabular.to(features.dtype)], dim=1)
        return self.head(features)

    def parameter_groups(self, lr: float, backbone_lr_ratio: float) -> list[dict]:
        """AdamW groups: the backbone at ``lr * backbone_lr_ratio``, the head at ``lr``."""
        return [{"params": list(self.backbone.parameters()), "lr": lr * backbone_lr_ratio},
                {"params": list(self.head.parameters()), "lr": lr}]
