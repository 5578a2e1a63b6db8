"""CDiffuSE (neillu23/CDiffuSE): conditional diffusion on the waveform, 16 kHz.

The adapter imports upstream's ``inference`` and ``preprocess`` modules from a source checkout
(``source_dir``: the repository root or its ``src/cdiffuse``) and uses them as upstream's
inference script does: the conditioner is ``preprocess.make_spectrum`` of the noisy clip (log1p
magnitude, ``n_fft`` bins, ``hop_samples`` hop; 513 bins for speech enhancement), the reverse
process is ``inference.predict`` with ``inference.inference_schedule`` (the 6-step fast
schedule unless ``fast_sampling: false``), and the output is cropped to the input length.

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

from serec.enhancers.base import Enhancer
from serec.enhancers.checkpoints import (
    UntrustedCheckpointError,
    clip_seed,
    import_from_checkout,
    import_required,
    peak,
    readable_file,
    require_path_param,
    seeded_torch,
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
class CDiffuSE(Enhancer):
    """CDiffuSE conditional diffusion enhancer from an upstream checkout and checkpoint."""

    native_sr = 16_000  # replaced per instance by the model's params.sample_rate in setup()
    default_params = {
        "source_dir": None,
        "checkpoint": None,
        "trust_checkpoint": False,
        "fast_sampling": True,
        "seed": 0,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        require_path_param(owner, params, "source_dir")
        require_path_param(owner, params, "checkpoint")

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

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        if peak(audio) == 0.0:  # upstream's make_spectrum divides by the peak
            return np.zeros_like(audio)
        torch, model_params = self._torch, self.model.params
        noisy = np.array(audio, dtype=np.float32)
        with torch.no_grad(), seeded_torch(clip_seed(audio, self.params["seed"]), self.device):
            spectrum, _, _ = self._preprocess.make_spectrum(
                y=noisy, FRAMELENGTH=model_params.n_fft, SHIFT=model_params.hop_samples)
            enhanced, _ = self._inference.predict(
                torch.from_numpy(np.ascontiguousarray(spectrum, dtype=np.float32)), self.model,
                noisy, *self.schedule, device=torch.device(self.device))
        return enhanced[0, :audio.size].float().cpu().numpy()
