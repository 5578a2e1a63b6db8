"""AST backbone loading, the numpy feature-extractor path, position resizing, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ASTModel
from transformers.utils import is_speech_available

from serec.models.backbone import (
    TINY,
    backbone_from_config,
    config_dict,
    load_backbone,
    make_extractor,
    patch_grid,
    resize_time_positions,
)
from serec.models.heads import ASTClassifier
from serec.models.inputs import real_frames, spectrograms

pytestmark = pytest.mark.timeout(60)


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_extractor_runs_without_torchaudio():
    assert not is_speech_available(), "serec must not depend on torchaudio"
    extractor = make_extractor(128)
    values, n_frames = spectrograms([tone(1.0), tone(0.5), tone(2.0)], extractor)
    assert values.shape == (3, 128, 128) and values.dtype == np.float32
    assert n_frames.tolist() == [98, 48, 128]
    assert np.isfinite(values).all()
    # padding frames are the normalised zero; real frames are not
    pad = (0.0 - extractor.mean) / (2 * extractor.std)
    assert np.allclose(values[1, 48:], pad)
    assert not np.allclose(values[1, :48], pad)


def test_real_frames_matches_kaldi_framing():
    assert real_frames(399, 1024) == 0
    assert real_frames(400, 1024) == 1
    assert real_frames(16000, 1024) == 98
    assert real_frames(16000 * 20, 1024) == 1024


def test_tiny_backbone_shape():
    model, extractor = load_backbone(TINY, 256)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert extractor.max_length == 256
    assert patch_grid(model.config) == (12, 25)
    assert model.embeddings.position_embeddings.shape == (1, 12 * 25 + 2, 64)


def test_resize_time_positions_keeps_prefix_and_interpolates():
    torch.manual_seed(0)
    model, _ = load_backbone(TINY, 256)
    torch.nn.init.normal_(model.embeddings.position_embeddings)
    before = model.embeddings.position_embeddings.detach().clone()
    resize_time_positions(model, 128)
    after = model.embeddings.position_embeddings.detach()
    f_dim, t_new = patch_grid(model.config)
    assert after.shape == (1, f_dim * t_new + 2, 64)
    grid_before = before[:, 2:].reshape(1, f_dim, 25, 64)
    grid_after = after[:, 2:].reshape(1, f_dim, t_new, 64)
    assert torch.equal(grid_after, grid_before[:, :, :t_new])
    assert torch.equal(after[:, :2], before[:, :2])
    resize_time_positions(model, 512)
    assert model.embeddings.position_embeddings.shape[1] == f_dim * patch_grid(model.config)[1] + 2
    out = model(input_values=torch.zeros(1, 512, 128)).last_hidden_state
    assert out.shape[1] == model.embeddings.position_embeddings.shape[1]


def test_local_directory_backbone(tmp_path):
    """A saved ASTModel + extractor directory loads through from_pretrained, cut to length."""
    torch.manual_seed(1)
    source, extractor = load_backbone(TINY, 256)
    source.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    model, loaded_extractor = load_backbone(str(tmp_path), 128)
    assert isinstance(model, ASTModel)
    assert loaded_extractor.max_length == 128 and model.config.max_length == 128
    assert torch.equal(model.layers[0].attention.q_proj.weight,
                       source.layers[0].attention.q_proj.weight)
    rebuilt = backbone_from_config(config_dict(model.config))
    shape = model.embeddings.position_embeddings.shape
    assert rebuilt.embeddings.position_embeddings.shape == shape


def test_pooling_averages_real_patches_only():
    torch.manual_seed(2)
    backbone, extractor = load_backbone(TINY, 128)
    model = ASTClassifier(backbone, 3, head_hidden=16, dropout=0.0).eval()
    values, n_frames = spectrograms([tone(1.0), tone(0.3)], extractor)
    x, n = torch.from_numpy(values), torch.from_numpy(n_frames)
    with torch.no_grad():
        pooled = model.pooled(x, n)
        tokens = backbone(input_values=x).last_hidden_state[:, 2:].reshape(2, 12, 12, 64)
    # 98 real frames: time patches starting at 0, 10, ..., 90 -> 10 of 12
    assert torch.allclose(pooled[0], tokens[0, :, :10].mean(dim=(0, 1)), atol=1e-6)
    # 0.3 s = 4800 samples -> 28 frames -> patches at 0, 10, 20
    assert n_frames[1] == 28
    assert torch.allclose(pooled[1], tokens[1, :, :3].mean(dim=(0, 1)), atol=1e-6)
