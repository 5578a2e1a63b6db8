"""CDiffuSE (neillu23/CDiffuSE): conditional diffusion on the waveform, 16 kHz.

The adapter imports upstream's ``inference`` and ``preprocess`` modules from a source checkout
(``source_dir``: the repository root or its ``src/cdiffuse``) and uses them as upstream's
inference script does: the conditioner is ``preprocess.make_spectrum`` of the noisy clip (log1p
magnitude, ``n_fft`` bins, ``hop_samples`` hop; 513 bins for speech enhancement), the reverse
process uses the coefficients of ``inference.inference_schedule`` (the 6-step fast schedule
unless ``fast_sampling: false``), and the output is cropped to the input length.

Upstream's ``inference.predict`` conditions every row of a batch on one noisy signal, so the
adapter runs the conditional reverse process itself (Lu et al., "Conditional diffusion
probabilistic model for speech enhancement", ICASSP 2022: per step, mix the current estimate
and the noisy input with the schedule's c1/c2/c3, add the schedule's noise; at the last step
blend in a fixed share of the noisy input) over a batch of clips, each row with its own
noisy signal and its own seeded noise generator. Clips are padded with silence to a multiple
of ``bucket_frames`` conditioner frames; clips that pad to the same size share a batch, and a
clip is padded the same way alone (``bucket_frames: 1`` pads no more than upstream does).

Upstream's modules are top-level modules with generic names (``model``, ``params``,
``inference``, ``preprocess``); the adapter refuses to load when other modules of those names
are already imported (each Ray actor is its own process, so this only bites in-process use).
Upstream runs in serec's own environment plus librosa: its module-level imports of torchaudio
and TensorBoard serve only training and file I/O and get stand-ins where missing, and its
``scipy.signal.hamming`` (an alias of ``scipy.signal.windows.hamming`` that SciPy 1.13 removed)
is re-added as that same function when missing.

CDiffuSE checkpoints (``{'model': state_dict, 'params': dict, ...}``) are loaded with
``torch.load(weights_only=True)``, which unpickles no code; ``trust_checkpoint: true`` allows
full unpickling for checkpoints that need it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.batching import (
    BATCH_PARAMS,
    BatchedEnhancer,
    check_batch_params,
    item_generators,
    item_noise,
    padded_size,
    stft_frames,
)
from serec.enhancers.checkpoints import (
    UntrustedCheckpointError,
    check_positive_int,
    import_from_checkout,
    import_required,
    readable_file,
    require_path_param,
    source_checkout,
    training_only_modules,
)
from serec.enhancers.registry import register_enhancer

log = logging.getLogger(__name__)

UPSTREAM_MODULES = ("params", "model", "inference", "preprocess")
SOURCE_SUBDIR = Path("src") / "cdiffuse"
INFERENCE_DEPENDENCIES = {
    "torch": "torch",
    "librosa": "librosa",
    "scipy.signal": "scipy",
    "sympy": "sympy",
    "tqdm": "tqdm",
}
"""What upstream's inference/preprocess modules import at module level (pip names as values)."""
TRAINING_ONLY_MODULES = ("torchaudio", "torch.utils.tensorboard")
"""Imported at module level by upstream, used only to write files and training logs."""
SPEECH_ENHANCEMENT_BINS = 513
"""Conditioner size of CDiffuSE's speech-enhancement models (upstream's ``--se`` default)."""
FINAL_NOISY_SHARE = 0.2
"""Share of the noisy input blended into the last reverse step (upstream's ``gamma``)."""


def cdiffuse_sources(path: str, owner: str) -> Path:
    """The directory holding upstream's modules: ``path`` itself or its ``src/cdiffuse``."""
    markers = [f"{name}.py" for name in UPSTREAM_MODULES]
    root = Path(path).expanduser().resolve()
    nested = root / SOURCE_SUBDIR
    return source_checkout(nested if nested.is_dir() else root, owner, "source_dir", markers)


def provide_scipy_hamming() -> None:
    """Re-add ``scipy.signal.hamming`` (removed in SciPy 1.13) as ``scipy.signal.windows.hamming``.

    It was an alias of exactly that function; upstream's ``make_spectrum`` passes it to librosa
    as the STFT window.
    """
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy.signal, "hamming"):
        log.info("scipy %s has no scipy.signal.hamming; aliasing scipy.signal.windows.hamming",
                 scipy.__version__)
        scipy.signal.hamming = scipy.signal.windows.hamming


def load_checkpoint(path: Path, trusted: bool, owner: str) -> dict:
    """``torch.load`` restricted to tensors and plain containers unless ``trusted``."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        raise UntrustedCheckpointError(
            f"{owner}: checkpoint {str(path)!r} holds more than tensors and plain containers, "
            f"so it cannot be loaded without unpickling code ({exc}). Set "
            f"'trust_checkpoint: true' only if you trust where the file comes from.") from exc
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{owner}: {str(path)!r} is not a CDiffuSE checkpoint (expected a dict "
                         f"with a 'model' state dict)")
    return checkpoint


@register_enhancer("cdiffuse")
class CDiffuSE(BatchedEnhancer):
    """CDiffuSE conditional diffusion enhancer from an upstream checkout and checkpoint."""

    native_sr = 16_000  # replaced per instance by the model's params.sample_rate in setup()
    default_params = {
        "source_dir": None,
        "checkpoint": None,
        "trust_checkpoint": False,
        "fast_sampling": True,
        "seed": 0,
        "bucket_frames": 32,   # conditioner frames (256 samples each); 1 = no extra padding
        **BATCH_PARAMS,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        require_path_param(owner, params, "source_dir")
        require_path_param(owner, params, "checkpoint")
        check_positive_int(owner, params, "bucket_frames")
        check_batch_params(owner, params)

    def setup(self) -> None:
        owner = self.describe(self.name)
        sources = cdiffuse_sources(self.params["source_dir"], owner)
        path = readable_file(self.params["checkpoint"], owner, "checkpoint")
        import_required(INFERENCE_DEPENDENCIES, owner)
        import torch

        provide_scipy_hamming()
        with training_only_modules(TRAINING_ONLY_MODULES):
            self._inference = import_from_checkout(sources, "inference", UPSTREAM_MODULES, owner)
            self._preprocess = import_from_checkout(sources, "preprocess", UPSTREAM_MODULES,
                                                    owner)
        params_module, model_module = sys.modules["params"], sys.modules["model"]
        checkpoint = load_checkpoint(path, self.params["trust_checkpoint"], owner)
        model_params = params_module.AttrDict(params_module.params)
        model_params.n_mels = SPEECH_ENHANCEMENT_BINS
        if isinstance(checkpoint.get("params"), dict):  # the params it was trained with
            model_params.override(checkpoint["params"])
        model = model_module.DiffuSE(None, model_params)
        model.load_state_dict(checkpoint["model"])
        self._torch = torch
        self.device = self.torch_device()
        self.model = model.to(self.device).eval()
        self.schedule = self._inference.inference_schedule(
            self.model, fast_sampling=self.params["fast_sampling"])
        self.native_sr = int(model_params.sample_rate)
        log.info("%s: loaded %s from %s (%d reverse steps, %d Hz) on %s", owner, path, sources,
                 len(self.schedule[0]), self.native_sr, self.device)

    def bucket_key(self, n_samples: int) -> int:
        return padded_size(stft_frames(n_samples, self.model.params.hop_samples),
                           self.params["bucket_frames"])

    def enhance_group(self, items: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        torch, model_params = self._torch, self.model.params
        frames = self.bucket_key(items[0].size)
        spectra = np.zeros((len(items), SPEECH_ENHANCEMENT_BINS, frames), dtype=np.float32)
        noisy = np.zeros((len(items), frames * model_params.hop_samples), dtype=np.float32)
        for row, item in enumerate(items):
            spectrum, _, _ = self._preprocess.make_spectrum(
                y=np.array(item, dtype=np.float32), FRAMELENGTH=model_params.n_fft,
                SHIFT=model_params.hop_samples)
            spectra[row, :, :spectrum.shape[-1]] = spectrum
            noisy[row, :item.size] = item
        alpha, _, _, _, steps, c1, c2, c3, _, delta_bar = self.schedule
        generators = item_generators(seeds, self.device)
        with torch.no_grad():
            condition = torch.from_numpy(spectra).to(self.device)
            noisy_t = torch.from_numpy(noisy).to(self.device)
            audio = noisy_t
            for n in range(len(alpha) - 1, -1, -1):
                step = torch.tensor([steps[n]], device=self.device)
                predicted = self.model(audio, condition, step).squeeze(1)
                if n > 0:
                    audio = c1[n] * audio + c2[n] * noisy_t - c3[n] * predicted
                    audio = audio + delta_bar[n] ** 0.5 * item_noise(generators, audio)
                else:
                    audio = c1[n] * audio - c3[n] * predicted
                    audio = (1 - FINAL_NOISY_SHARE) * audio + FINAL_NOISY_SHARE * noisy_t
                audio = torch.clamp(audio, -1.0, 1.0)
            enhanced = audio.float().cpu().numpy()
        return [enhanced[row, :item.size] for row, item in enumerate(items)]
