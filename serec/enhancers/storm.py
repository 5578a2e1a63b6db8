"""StoRM (sp-uhh/storm): a predictive NCSN++ denoiser, then diffusion-based regeneration.

The adapter imports StoRM's code from a source checkout (``source_dir``). In ``storm`` mode it
drives the model the way its own ``enhance`` does (peak-normalise, STFT and spectral transform,
zero-pad to a multiple of 64 frames, the predictive denoiser, then PC sampling conditioned as
the checkpoint says, ISTFT, undo the normalisation), but for a batch of clips of equal padded
length at once, each with its own seeded noise generator (:mod:`serec.enhancers.batching`),
so a clip's output does not depend on its batch-mates. The ``denoiser-only`` and
``score-only`` modes call the model's own ``enhance`` one clip at a time. Two constraints come
from upstream:

- StoRM's code is a top-level package named ``sgmse``, like the SGMSE+ package on PyPI; one
  process can hold only one of them, so StoRM runs in its own Ray ``runtime_env`` whose
  interpreter has StoRM's requirements and no ``sgmse`` distribution installed. The adapter
  refuses to load when another ``sgmse`` is already imported or would shadow the checkout.
- CUDA only: importing StoRM's backbones JIT-compiles its CUDA kernels (needs ``nvcc`` and
  ``ninja``), and its ``enhance`` moves inputs to CUDA.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

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
    check_choice,
    check_positive,
    check_positive_int,
    import_from_checkout,
    import_required,
    load_lightning_checkpoint,
    peak,
    readable_file,
    require_path_param,
    require_trust,
    source_checkout,
    training_only_modules,
)
from serec.enhancers.registry import register_enhancer

log = logging.getLogger(__name__)

MODEL_CLASSES = {
    "storm": "StochasticRegenerationModel",
    "denoiser-only": "DiscriminativeModel",
    "score-only": "ScoreModel",
}
"""Upstream's ``--mode`` choices and the model class each loads."""
CORRECTORS = ("ald", "langevin", "none")
CHECKOUT_MARKERS = ("sgmse/model.py", "sgmse/data_module.py", "sgmse/sampling/__init__.py")
INFERENCE_DEPENDENCIES = {
    "torch": "torch",
    "pytorch_lightning": "pytorch-lightning",
    "torch_ema": "torch-ema",
    "wandb": "wandb",
    "matplotlib": "matplotlib",
    "h5py": "h5py",
    "pydub": "pydub",
    "pesq": "pesq",
    "pystoi": "pystoi",
    "scipy": "scipy",
    "soundfile": "soundfile",
    "tqdm": "tqdm",
}
"""What StoRM's ``sgmse.model`` imports at module level (pip package names as values)."""
TRAINING_ONLY_MODULES = ("torchaudio",)
SAMPLE_RATE = 16_000
"""Upstream's enhancement script runs every StoRM checkpoint at 16 kHz."""
PAD_FRAMES = 64
"""StoRM's ``pad_spec`` pads spectrograms to a multiple of 64 frames."""
CONDITIONINGS = ("noisy", "post_denoiser", "both")


@register_enhancer("storm")
class StoRM(BatchedEnhancer):
    """StoRM stochastic regeneration (or its denoiser/score model alone) on CUDA."""

    native_sr = SAMPLE_RATE
    default_params = {
        "source_dir": None,
        "checkpoint": None,
        "trust_checkpoint": False,
        "mode": "storm",
        "corrector": "ald",
        "corrector_steps": 1,
        "snr": 0.5,
        "N": 50,
        "seed": 0,
        **BATCH_PARAMS,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        require_path_param(owner, params, "source_dir")
        require_path_param(owner, params, "checkpoint")
        require_trust(owner, params, "a StoRM checkpoint is a pickled Lightning checkpoint "
                                     "(its hyperparameters hold Python classes).")
        check_choice(owner, params, "mode", tuple(MODEL_CLASSES))
        check_choice(owner, params, "corrector", CORRECTORS)
        check_positive_int(owner, params, "corrector_steps")
        check_positive_int(owner, params, "N")
        check_positive(owner, params, "snr")
        check_batch_params(owner, params)

    def setup(self) -> None:
        owner = self.describe(self.name)
        self.device = self.torch_device()
        if self.device != "cuda":
            raise RuntimeError(
                f"{owner}: StoRM runs on CUDA only (importing its backbones compiles CUDA "
                f"kernels and its enhance() calls .cuda()); set resources.num_gpus > 0 and run "
                f"on a GPU node with the CUDA toolkit (nvcc) and ninja")
        source = source_checkout(self.params["source_dir"], owner, "source_dir",
                                 CHECKOUT_MARKERS)
        path = readable_file(self.params["checkpoint"], owner, "checkpoint")
        import_required(INFERENCE_DEPENDENCIES, owner)
        import torch

        self._torch = torch
        with training_only_modules(TRAINING_ONLY_MODULES):
            import_from_checkout(source, "sgmse.data_module", ["sgmse"], owner)
            model_module = import_from_checkout(source, "sgmse.model", ["sgmse"], owner)
        # StoRM's model.py switches anomaly detection on for the whole process when imported;
        # inference needs no autograd, and anomaly mode slows every op.
        torch.autograd.set_detect_anomaly(False)
        model_class = getattr(model_module, MODEL_CLASSES[self.params["mode"]])
        # Hyperparameter overrides as upstream's enhancement.py passes them.
        model = load_lightning_checkpoint(model_class, path, self.device, base_dir="",
                                          batch_size=1, num_workers=0,
                                          kwargs={"gpu": False})
        model.eval(no_ema=False)
        self.model = model.to(self.device)
        log.info("%s: loaded %s (%s) from %s on %s", owner, path, type(model).__name__, source,
                 self.device)

    def batch_limit(self) -> int:
        batchable = self.params["mode"] == "storm" and self.params["corrector"] != "langevin"
        return super().batch_limit() if batchable else 1

    def bucket_key(self, n_samples: int) -> int:
        return padded_size(stft_frames(n_samples, self.model.data_module.hop_length),
                           PAD_FRAMES)

    def enhance_group(self, items: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        torch, p = self._torch, self.params
        generators = item_generators(seeds, self.device)
        if p["mode"] != "storm":  # one clip (batch_limit); the model's own enhance
            (item,) = items
            with torch.no_grad(), per_item_noise(generators):
                noisy = torch.from_numpy(np.array(item, dtype=np.float32)).unsqueeze(0)
                out = self.model.enhance(noisy, corrector=p["corrector"], N=p["N"],
                                         corrector_steps=p["corrector_steps"], snr=p["snr"])
            return [out.squeeze().float().cpu().numpy()]
        model = self.model
        if model.condition not in CONDITIONINGS:
            raise ValueError(f"{self.describe(self.name)}: unknown conditioning "
                             f"{model.condition!r}")
        norms = [peak(item) for item in items]
        with torch.no_grad():
            noisy_specs = padded_spectrograms(model, items, norms,
                                              self.bucket_key(items[0].size), self.device)
            denoised = model.forward_denoiser(noisy_specs)
            conditioning = {"noisy": [noisy_specs], "post_denoiser": [denoised],
                            "both": [noisy_specs, denoised]}[model.condition]
            with per_item_noise(generators):
                sampler = model.get_pc_sampler(
                    "reverse_diffusion", p["corrector"], denoised, N=p["N"],
                    corrector_steps=p["corrector_steps"], snr=p["snr"], intermediate=False,
                    scale_factor=None, conditioning=conditioning)
                samples, _ = sampler()
            return spectrograms_to_audio(model, samples, items, norms)
