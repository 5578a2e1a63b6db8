"""SGMSE+ (sp-uhh/sgmse, PyPI ``sgmse``): score-based diffusion in the complex STFT domain.

The adapter imports the upstream code, from the installed ``sgmse`` package or from a source
checkout (``source_dir``), and drives it the way upstream's ``enhancement.py``
does: normalise by the noisy peak, STFT and spectral transform of the checkpoint's data module,
pad to a multiple of 64 frames (``bucket_frames``), reverse sampling (PC or ODE for the OUVE
SDE, the Schrödinger bridge sampler for SBVE), inverse transform and ISTFT, undo the
normalisation. Upstream's own ``ScoreModel.enhance`` is not used because it moves inputs to
CUDA unconditionally.

Clips of equal padded length are sampled as one batch (:mod:`serec.enhancers.batching`); each
clip's sampling noise comes from its own generator seeded from its samples and ``seed``, so a
clip's output does not depend on its batch-mates and labels are reproducible. Two samplers
couple the clips of a batch and so run one clip at a time: the ODE sampler of OUVE
checkpoints (one adaptive ``solve_ivp`` over the whole batch) and the ``langevin`` corrector
(its step size uses the batch-mean gradient norm).

The native rate follows the checkpoint (48 kHz for ``ncsnpp_48k``/EARS models, else the
model's ``sr`` hyperparameter, 16 kHz for the VB-DMD/WSJ0 checkpoints).

On a machine where CUDA is available, upstream's NCSN++ compiles its CUDA kernels when it is
imported, from ``.cpp``/``.cu`` files beside it. The ``sgmse==0.1.2`` wheel on PyPI leaves those
files out, so on GPU nodes use a source checkout (``source_dir``); the adapter says so up front.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import MissingDependencyError
from serec.enhancers.batching import (
    BATCH_PARAMS,
    BatchedEnhancer,
    check_batch_params,
    item_generators,
    padded_size,
    padded_spectrograms,
    per_item_noise,
    spectrograms_to_audio,
    stft_frames,
)
from serec.enhancers.checkpoints import (
    ModuleConflictError,
    check_choice,
    check_positive,
    check_positive_int,
    import_from_checkout,
    import_required,
    load_lightning_checkpoint,
    module_locations,
    peak,
    readable_file,
    require_path_param,
    require_trust,
    source_checkout,
    training_only_modules,
)
from serec.enhancers.registry import register_enhancer

log = logging.getLogger(__name__)

INFERENCE_DEPENDENCIES = {
    "torch": "torch",
    "pytorch_lightning": "pytorch-lightning",
    "torch_ema": "torch-ema",
    "librosa": "librosa",
    "pesq": "pesq",
    "pystoi": "pystoi",
    "scipy": "scipy",
}
"""What ``sgmse.model`` imports at module level and really needs (pip names as values)."""
UPSTREAM_MODULES = {"sgmse.model": "sgmse", "sgmse.data_module": "sgmse",
                    "sgmse.util.other": "sgmse"}
TRAINING_ONLY_MODULES = ("torchaudio", "torch_pesq")
"""Imported at module level by ``sgmse`` but used only to read files while training and for
the PESQ training loss; torchaudio has no build for serec's torch pin."""

CUDA_KERNEL_SOURCES = ("backbones/ncsnpp_utils/op/upfirdn2d.cpp",
                       "backbones/ncsnpp_utils/op/upfirdn2d_kernel.cu")
"""Compiled by upstream at import time whenever CUDA is available (paths inside ``sgmse/``)."""
CHECKOUT_MARKERS = ("sgmse/model.py", "sgmse/data_module.py",
                    *(f"sgmse/{source}" for source in CUDA_KERNEL_SOURCES))

SAMPLER_TYPES = ("pc", "ode", "sde")
PREDICTORS = ("reverse_diffusion", "euler_maruyama", "none")
CORRECTORS = ("ald", "langevin", "none")
FULLBAND_BACKBONES = {"ncsnpp_48k": 48_000}
REFLECTION_PAD_BACKBONES = ("ncsnpp_48k", "ncsnpp_v2")
"""As upstream's enhancement.py: these backbones pad spectrograms by reflection, others by zeros."""


def load_sgmse(owner: str = "sgmse", source_dir: str | None = None) -> types.SimpleNamespace:
    """Import upstream SGMSE+ (``ScoreModel``, ``SpecsDataModule``, ``pad_spec``) from the
    installed package or, with ``source_dir``, from a source checkout.

    Raises :class:`MissingDependencyError` naming the pip package that is missing (or the
    checkout that CUDA needs), and :class:`ModuleConflictError` if ``sgmse`` in this process is
    StoRM's package of that name or another copy.
    """
    import_required(INFERENCE_DEPENDENCIES, owner)
    if source_dir is None:
        _check_package_can_import_on_this_machine(owner)
        with training_only_modules(TRAINING_ONLY_MODULES):
            import_required(UPSTREAM_MODULES, owner)
        import sgmse.data_module as data_module
        import sgmse.model as model
        import sgmse.util.other as other
    else:
        source = source_checkout(source_dir, owner, "source_dir", CHECKOUT_MARKERS)
        with training_only_modules(TRAINING_ONLY_MODULES):
            model = import_from_checkout(source, "sgmse.model", ["sgmse"], owner)
            data_module = import_from_checkout(source, "sgmse.data_module", ["sgmse"], owner)
            other = import_from_checkout(source, "sgmse.util.other", ["sgmse"], owner)
    if hasattr(model, "StochasticRegenerationModel"):
        where = ", ".join(str(p) for p in module_locations(sys.modules["sgmse"])) or "unknown"
        raise ModuleConflictError(
            f"{owner}: the module 'sgmse' in this process is StoRM's code (from {where}), not "
            f"SGMSE+; run StoRM enhancers in their own Ray runtime_env")
    return types.SimpleNamespace(ScoreModel=model.ScoreModel,
                                 SpecsDataModule=data_module.SpecsDataModule,
                                 pad_spec=other.pad_spec)


def _check_package_can_import_on_this_machine(owner: str) -> None:
    """With CUDA available, the installed package must ship the kernel sources it compiles."""
    import torch

    spec = importlib.util.find_spec("sgmse")
    if spec is None or not spec.submodule_search_locations or not torch.cuda.is_available():
        return
    package = Path(next(iter(spec.submodule_search_locations)))
    missing = [source for source in CUDA_KERNEL_SOURCES if not (package / source).is_file()]
    if missing:
        raise MissingDependencyError(
            f"{owner}: the installed sgmse package ({package}) lacks the CUDA kernel sources "
            f"that it compiles on import when CUDA is available ({', '.join(missing)}; the "
            f"PyPI wheel sgmse==0.1.2 leaves them out). Set 'source_dir' to a checkout of "
            f"https://github.com/sp-uhh/sgmse, or run this enhancer where CUDA is not visible")


def checkpoint_sample_rate(backbone: str, model_sr: int | None) -> int:
    """Native rate of a checkpoint: 48 kHz for the full-band backbone, else its ``sr``."""
    if backbone in FULLBAND_BACKBONES:
        return FULLBAND_BACKBONES[backbone]
    return int(model_sr) if model_sr else 16_000


@register_enhancer("sgmse")
class SGMSE(BatchedEnhancer):
    """SGMSE+ score-based diffusion enhancer from a Lightning checkpoint (EMA weights)."""

    native_sr = 16_000  # replaced per instance by the checkpoint's rate in setup()
    default_params = {
        "checkpoint": None,
        "trust_checkpoint": False,
        "source_dir": None,
        "sampler_type": "pc",
        "predictor": "reverse_diffusion",
        "corrector": "ald",
        "corrector_steps": 1,
        "snr": 0.5,
        "N": None,
        "t_eps": None,
        "sample_rate": None,
        "seed": 0,
        "bucket_frames": 64,   # pad spectrograms to a multiple of this; upstream uses 64
        **BATCH_PARAMS,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        require_path_param(owner, params, "checkpoint")
        if params["source_dir"] is not None:
            require_path_param(owner, params, "source_dir")
        require_trust(owner, params, "an SGMSE+ checkpoint is a pickled Lightning checkpoint "
                                     "(its hyperparameters hold Python classes).")
        check_choice(owner, params, "sampler_type", SAMPLER_TYPES)
        check_choice(owner, params, "predictor", PREDICTORS)
        check_choice(owner, params, "corrector", CORRECTORS)
        check_positive_int(owner, params, "corrector_steps")
        check_positive_int(owner, params, "N", allow_none=True)
        check_positive_int(owner, params, "sample_rate", allow_none=True)
        check_positive(owner, params, "snr")
        check_positive_int(owner, params, "bucket_frames")
        if params["bucket_frames"] % 64:
            raise ValueError(f"{owner}: parameter 'bucket_frames' must be a multiple of 64 "
                             f"(NCSN++ halves the frame axis 6 times), got "
                             f"{params['bucket_frames']}")
        check_batch_params(owner, params)
        t_eps = params["t_eps"]
        if t_eps is not None and (isinstance(t_eps, bool) or not isinstance(t_eps, (int, float))
                                  or not 0 < t_eps < 1):
            raise ValueError(f"{owner}: parameter 't_eps' must be in (0, 1) or null, got {t_eps!r}")

    def setup(self) -> None:
        owner = self.describe(self.name)
        path = readable_file(self.params["checkpoint"], owner, "checkpoint")
        upstream = load_sgmse(owner, self.params["source_dir"])
        import torch

        self._torch = torch
        self.device = self.torch_device()
        model = load_lightning_checkpoint(upstream.ScoreModel, path, self.device)
        if self.params["t_eps"] is not None:
            model.t_eps = float(self.params["t_eps"])
        model.to(self.device)
        model.eval()  # upstream's eval() swaps in the EMA weights
        self.model = model
        self.sde_name = type(model.sde).__name__
        if self.sde_name not in ("OUVESDE", "SBVESDE"):
            raise ValueError(f"{owner}: checkpoint uses SDE {self.sde_name}; only OUVESDE and "
                             f"SBVESDE can be sampled")
        if self.sde_name == "OUVESDE" and self.params["sampler_type"] == "sde":
            raise ValueError(f"{owner}: sampler_type 'sde' is for Schrödinger-bridge (SBVESDE) "
                             f"checkpoints; this one uses OUVESDE (use 'pc' or 'ode')")
        backbone = str(model.backbone)
        self.native_sr = self.params["sample_rate"] or checkpoint_sample_rate(
            backbone, getattr(model, "sr", None))
        self.pad_mode = "reflection" if backbone in REFLECTION_PAD_BACKBONES else "zero_pad"
        log.info("%s: loaded %s (backbone %s, %s, %d Hz) on %s", owner, path, backbone,
                 self.sde_name, self.native_sr, self.device)

    def _sampler(self, spec: Any) -> Any:
        """The upstream sampler for one padded, transformed spectrogram (as enhancement.py)."""
        p, model = self.params, self.model
        if self.sde_name == "SBVESDE":
            kind = "ode" if p["sampler_type"] == "pc" else p["sampler_type"]
            return model.get_sb_sampler(sde=model.sde, y=spec, sampler_type=kind, N=p["N"])
        if p["sampler_type"] == "ode":
            return model.get_ode_sampler(spec, N=p["N"], device=self.device)
        return model.get_pc_sampler(p["predictor"], p["corrector"], spec, N=p["N"],
                                    corrector_steps=p["corrector_steps"], snr=p["snr"])

    def batch_limit(self) -> int:
        coupled = (self.params["corrector"] == "langevin"
                   or (self.sde_name == "OUVESDE" and self.params["sampler_type"] == "ode"))
        return 1 if coupled else super().batch_limit()

    def bucket_key(self, n_samples: int) -> int:
        frames = stft_frames(n_samples, self.model.data_module.hop_length)
        return padded_size(frames, self.params["bucket_frames"])

    def enhance_group(self, items: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        norms = [peak(item) for item in items]
        with self._torch.no_grad():
            specs = padded_spectrograms(self.model, items, norms, self.bucket_key(items[0].size),
                                        self.device, self.pad_mode == "reflection")
            with per_item_noise(item_generators(seeds, self.device)):
                samples, _ = self._sampler(specs)()
            return spectrograms_to_audio(self.model, samples, items, norms)
