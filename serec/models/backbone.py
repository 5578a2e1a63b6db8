"""The Audio Spectrogram Transformer backbone and its input feature extractor.

A backbone is named by a Hugging Face hub id or a local directory holding a saved ``ASTModel``
(default: the AudioSet fine-tuned AST), or ``tiny``: a small randomly initialised AST built in
code, for tests and the offline demo. Checkpoints store the backbone's ``ASTConfig`` as a dict,
so a trained model is rebuilt without the hub.

Inputs come from ``ASTFeatureExtractor``: 128 Kaldi-style log-mel bins every 10 ms, padded or
cut to ``max_length`` frames and normalised with the AudioSet mean/std. Without torchaudio the
extractor uses transformers' numpy ``spectrogram``/``mel_filter_bank`` path (serec does not
depend on torchaudio).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

from serec.audio import TARGET_SR

DEFAULT_BACKBONE = "MIT/ast-finetuned-audioset-10-10-0.4593"
TINY = "tiny"
NUM_MEL_BINS = 128
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 128}
# Keys of a hub config that describe the original classifier or the saving library, not the
# encoder; they are left out of checkpoint cards.
_CARD_SKIP_KEYS = ("id2label", "label2id", "architectures", "_name_or_path",
                   "transformers_version", "problem_type", "dtype", "torch_dtype")


def tiny_config(max_length: int) -> ASTConfig:
    """The ``tiny`` backbone's configuration (about 0.1 M parameters)."""
    return ASTConfig(**TINY_SHAPE, max_length=max_length, num_mel_bins=NUM_MEL_BINS)


def _quiet(build, *args: Any, **kwargs: Any) -> ASTFeatureExtractor:
    # 128 Kaldi mel bins over a 512-point FFT leave the lowest filter empty; transformers'
    # numpy path warns about it on every construction (torchaudio's path has the same filter).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero")
        return build(*args, **kwargs)


def make_extractor(max_length: int, **overrides: Any) -> ASTFeatureExtractor:
    """AST feature extractor at 16 kHz with ``max_length`` frames."""
    params = {"sampling_rate": TARGET_SR, "num_mel_bins": NUM_MEL_BINS, **overrides,
              "max_length": max_length}
    return _quiet(ASTFeatureExtractor, **params)


def pretrained_extractor(backbone: str, max_length: int) -> ASTFeatureExtractor:
    """The feature extractor saved with a hub id / directory, cut to ``max_length`` frames."""
    extractor = _quiet(ASTFeatureExtractor.from_pretrained, backbone)
    extractor.max_length = max_length
    return extractor


def extractor_params(extractor: ASTFeatureExtractor) -> dict[str, Any]:
    """The extractor's settings as plain JSON values (stored in cards)."""
    return {"sampling_rate": int(extractor.sampling_rate),
            "num_mel_bins": int(extractor.num_mel_bins),
            "max_length": int(extractor.max_length), "do_normalize": bool(extractor.do_normalize),
            "mean": float(extractor.mean), "std": float(extractor.std)}


def extractor_from_params(params: dict[str, Any]) -> ASTFeatureExtractor:
    return make_extractor(**params)


def config_dict(config: ASTConfig) -> dict[str, Any]:
    """The encoder-relevant part of an ``ASTConfig`` as a JSON-able dict."""
    data = config.to_dict()
    return {k: v for k, v in data.items() if k not in _CARD_SKIP_KEYS}


def backbone_from_config(data: dict[str, Any]) -> ASTModel:
    """A randomly initialised ``ASTModel`` of exactly this configuration (weights loaded later)."""
    return ASTModel(ASTConfig.from_dict(dict(data)))


def resize_time_positions(model: ASTModel, max_length: int) -> None:
    """Adapt a backbone's position embeddings to ``max_length`` input frames, in place.

    The patch grid is frequency x time; a shorter input keeps the first time positions of every
    frequency row (as the AST authors do for short clips), a longer one interpolates them.
    """
    config = model.config
    if config.max_length == max_length:
        return
    embeddings = model.embeddings
    f_old, t_old = embeddings.get_shape(config)
    config.max_length = max_length
    f_new, t_new = embeddings.get_shape(config)
    assert f_new == f_old
    positions = embeddings.position_embeddings.data
    special, grid = positions[:, :2], positions[:, 2:]
    hidden = grid.shape[-1]
    grid = grid.reshape(1, f_old, t_old, hidden)
    if t_new <= t_old:
        grid = grid[:, :, :t_new]
    else:
        grid = torch.nn.functional.interpolate(
            grid.permute(0, 3, 1, 2), size=(f_old, t_new), mode="bilinear",
            align_corners=False).permute(0, 2, 3, 1)
    grid = grid.reshape(1, f_new * t_new, hidden)
    embeddings.position_embeddings = torch.nn.Parameter(torch.cat([special, grid], dim=1))


def load_backbone(backbone: str, max_length: int) -> tuple[ASTModel, ASTFeatureExtractor]:
    """``(ASTModel, feature extractor)`` for ``tiny``, a hub id or a local directory.

    ``tiny`` is randomly initialised (seed torch first for repeatable weights); any other name
    loads pretrained weights with ``ASTModel.from_pretrained`` and the extractor saved with them,
    then fits the position embeddings to ``max_length``.
    """
    if backbone == TINY:
        return ASTModel(tiny_config(max_length)), make_extractor(max_length)
    model = ASTModel.from_pretrained(backbone)
    resize_time_positions(model, max_length)
    return model, pretrained_extractor(backbone, max_length)


def patch_grid(config: ASTConfig) -> tuple[int, int]:
    """``(frequency, time)`` patches of the backbone's input grid."""
    f_dim = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t_dim = (config.max_length - config.patch_size) // config.time_stride + 1
    return f_dim, t_dim
