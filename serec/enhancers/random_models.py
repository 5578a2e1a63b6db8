"""Randomly initialised diffusion checkpoints, saved the way upstream saves trained ones.

For tests and benchmarks that need a real SGMSE+ network and sampler without downloading
weights: the architecture and the whole inference path are upstream's, only the weights are
random (the EMA copy differs from the raw weights, as after training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_random_sgmse(path: Path, upstream: Any, nf: int = 4, levels: int = 4,
                      n_fft: int = 126, hop_length: int = 64, seed: int = 0) -> list:
    """Save a random NCSN++ ``ScoreModel`` (OUVE SDE) as a Lightning checkpoint at ``path``.

    ``upstream`` is :func:`serec.enhancers.sgmse.load_sgmse`'s namespace. Returns the EMA
    weights that loading the checkpoint must restore.
    """
    import pytorch_lightning
    import torch

    torch.manual_seed(seed)
    model = upstream.ScoreModel(
        backbone="ncsnpp", sde="ouve", data_module_cls=upstream.SpecsDataModule,
        base_dir="", n_fft=n_fft, hop_length=hop_length, nf=nf, ch_mult=(1,) * levels,
        num_res_blocks=1, attn_resolutions=(), theta=1.5, sigma_min=0.05, sigma_max=0.5, N=30)
    ema_weights = [p.detach().clone() for p in model.dnn.parameters()]
    with torch.no_grad():  # raw weights drift away from the EMA, as after training
        for parameter in model.dnn.parameters():
            parameter.add_(0.05)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": pytorch_lightning.__version__}
    model.on_save_checkpoint(checkpoint)  # upstream hook: adds the EMA state
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return ema_weights


def save_random_cdiffuse(checkout: str | Path, folder: Path, layers: int = 2,
                         channels: int = 8) -> tuple[Path, Path]:
    """Save a random DiffuSE (speech-enhancement conditioner) in upstream's checkpoint layout.

    Returns (plain checkpoint: params as a dict, checkpoint pickling upstream's ``AttrDict``).
    """
    import torch

    from serec.enhancers.cdiffuse import SPEECH_ENHANCEMENT_BINS, UPSTREAM_MODULES, cdiffuse_sources
    from serec.enhancers.checkpoints import import_from_checkout

    sources = cdiffuse_sources(str(checkout), "random model")
    params_module = import_from_checkout(sources, "params", UPSTREAM_MODULES, "random model")
    model_module = import_from_checkout(sources, "model", UPSTREAM_MODULES, "random model")
    params = params_module.AttrDict(params_module.params)
    params.override({"n_mels": SPEECH_ENHANCEMENT_BINS, "residual_layers": layers,
                     "residual_channels": channels, "dilation_cycle_length": 2})
    torch.manual_seed(0)
    model = model_module.DiffuSE(None, params)
    with torch.no_grad():  # upstream zero-initialises it; make the output depend on the net
        model.output_projection.weight.normal_(std=0.1)
    folder.mkdir(parents=True, exist_ok=True)
    plain, pickled = folder / "weights-0.pt", folder / "weights-attrdict.pt"
    # the layout of upstream's learner.state_dict(): params saved as a plain dict
    torch.save({"step": 0, "model": model.state_dict(), "params": dict(params)}, plain)
    torch.save({"step": 0, "model": model.state_dict(), "params": params}, pickled)
    return plain, pickled
