"""DNSMOS P.835 (SIG, BAK, OVR) and P.808 with batched ONNX inference.

Reproduces Microsoft's DNS-Challenge ``dnsmos_local.py`` (as packaged by ``speechmos``) from the
ONNX files shipped in the ``speechmos`` wheel, without its Python code and without librosa: the
P.808 log-mel input is computed here in numpy. :class:`Dnsmos` loads both models once and scores
the windows of many clips in one ONNX run per model. The reference scores every 9.01 s window at
a 1 s hop; the P.835 model's convolutions before its first pooling run once over the frames a
clip's windows share (:class:`SharedWindowsP835`), which is most of its cost.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serec.audio import TARGET_SR

try:
    import onnxruntime as ort
except ImportError as exc:  # serec's extras choose the build: [cpu] or [gpu]
    raise ImportError(
        "DNSMOS needs an ONNX runtime: pip install 'serec[cpu]' (onnxruntime) or, on CUDA "
        "nodes, 'serec[gpu]' (onnxruntime-gpu)") from exc

if TYPE_CHECKING:
    import onnx

CUDA_PROVIDER = "CUDAExecutionProvider"

SCORE_COLUMNS: tuple[str, ...] = ("sig", "bak", "ovr", "p808", "sig_raw", "bak_raw", "ovr_raw")

WINDOW_SECONDS = 9.01
WINDOW_SAMPLES = int(WINDOW_SECONDS * TARGET_SR)  # 144160, the primary model's input length
HOP_SAMPLES = TARGET_SR
# The P.835 model frames a window into 900 frames of 320 samples at a 160-sample hop.
P835_FRAME = 320
P835_FRAME_HOP = 160
P835_WINDOW_FRAMES = (WINDOW_SAMPLES - P835_FRAME) // P835_FRAME_HOP + 1
P835_FRAMES = "mos_estimator_logpow/concat:0"  # the frames, (batch, 900, 320)
P835_BEFORE_POOLING = "mos_estimator_logpow/conv2d_3/Relu:0"  # input of the first pooling
P808_TRIM = 160  # the P.808 model sees each window minus its last 160 samples (900 mel frames)
MEL_N_FFT = 321
MEL_HOP = 160
N_MELS = 120
TOP_DB = 80.0
POWER_FLOOR = 1e-10

# Cubic/quadratic maps from raw model output to MOS (highest power first), from dnsmos_local.py.
_POLY_MAPS: dict[bool, dict[str, tuple[float, ...]]] = {
    False: {
        "sig": (-0.08397278, 1.22083953, 0.0052439),
        "bak": (-0.13166888, 1.60915514, -0.39604546),
        "ovr": (-0.06766283, 1.11546468, 0.04602535),
    },
    True: {
        "sig": (-0.01019296, 0.02751166, 1.19576786, -0.24348726),
        "bak": (-0.04976499, 0.44276479, -0.1644611, 0.96883132),
        "ovr": (-0.00533021, 0.005101, 1.18058466, -0.11236046),
    },
}


@dataclass(frozen=True)
class DnsmosScores:
    """Clip-level DNSMOS: polynomial-mapped P.835 MOS, P.808 MOS and raw P.835 outputs.

    Each value is the mean over the clip's 9.01 s windows (mapped scores map each window first).
    """

    sig: float
    bak: float
    ovr: float
    p808: float
    sig_raw: float
    bak_raw: float
    ovr_raw: float

    def as_dict(self) -> dict[str, float]:
        """Scores keyed by :data:`SCORE_COLUMNS`."""
        return asdict(self)


def model_paths(personalized: bool = False) -> tuple[Path, Path]:
    """Paths of the (P.835, P.808) ONNX files inside the installed ``speechmos`` package."""
    package = resources.files("speechmos")
    primary_dir = "pdnsmos_models" if personalized else "dnsmos_models"
    primary = Path(str(package / primary_dir / "sig_bak_ovr.onnx"))
    p808 = Path(str(package / "dnsmos_models" / "model_v8.onnx"))
    for path in (primary, p808):
        if not path.is_file():
            raise FileNotFoundError(f"DNSMOS model missing from the speechmos wheel: {path}")
    return primary, p808


def validate_input(audio: np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
    """Check a clip is 1-D, float, finite, non-empty, in [-1, 1] and at 16 kHz; returns float32."""
    if sr != TARGET_SR:
        raise ValueError(f"DNSMOS needs {TARGET_SR} Hz audio, got sr={sr}")
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio must be a numpy array, got {type(audio).__name__}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be floating point, got dtype {audio.dtype}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("audio is empty")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or inf")
    peak = float(np.max(np.abs(audio)))
    if peak > 1.0:
        raise ValueError(f"audio must lie in [-1, 1], peak is {peak:.4f}")
    return audio.astype(np.float32, copy=False)


def tile_to_window(audio: np.ndarray) -> np.ndarray:
    """Repeat a short clip by doubling it until it covers one window (as the reference does)."""
    while audio.size < WINDOW_SAMPLES:
        audio = np.concatenate([audio, audio])
    return audio


def window_bounds(n_samples: int) -> list[tuple[int, int]]:
    """(start, stop) of every scored window of a tiled clip of ``n_samples`` samples.

    The bounds use the reference's float arithmetic on purpose: ``int((idx + 9.01) * 16000)``
    rounds down to 144159 samples for some hops (idx 7..23, 119..., ...), and the reference
    silently skips those short windows; doing the same keeps scores identical.
    """
    num_hops = int(math.floor(n_samples / TARGET_SR) - WINDOW_SECONDS) + 1
    bounds = []
    for idx in range(num_hops):
        start = int(idx * HOP_SAMPLES)
        stop = int((idx + WINDOW_SECONDS) * HOP_SAMPLES)
        if min(stop, n_samples) - start >= WINDOW_SAMPLES:
            bounds.append((start, stop))
    return bounds


# Slaney mel scale: linear below 1 kHz, logarithmic above (as librosa with htk=False).
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    safe = np.maximum(hz, _MEL_MIN_LOG_HZ)
    return np.where(hz >= _MEL_MIN_LOG_HZ,
                    _MEL_MIN_LOG_MEL + np.log(safe / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP,
                    hz / _MEL_F_SP)


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MEL_MIN_LOG_MEL,
                    _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (mel - _MEL_MIN_LOG_MEL)),
                    _MEL_F_SP * mel)


def mel_filterbank(sr: int = TARGET_SR, n_fft: int = MEL_N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular mel filters (Slaney mel scale, Slaney area norm), shape (n_mels, 1 + n_fft//2).

    Same construction as ``librosa.filters.mel`` with fmin=0, fmax=sr/2; returned as float32.
    """
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_edges = _mel_to_hz_slaney(
        np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2.0), n_mels + 2))
    widths = np.diff(mel_edges)
    ramps = mel_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    # rounded to float32 before the norm is applied, as librosa does
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    area_norm = 2.0 / (mel_edges[2:] - mel_edges[:-2])
    return (weights * area_norm[:, None]).astype(np.float32)


_MEL_BASIS = mel_filterbank()
# periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) (scipy.signal imports slowly)
_HANN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)


def melspectrogram(signals: np.ndarray) -> np.ndarray:
    """Power mel spectrogram of each row, shape (batch, N_MELS, frames), float32.

    Matches ``librosa.feature.melspectrogram(y, sr=16000, n_fft=321, hop_length=160,
    n_mels=120)`` (centred frames, zero padding, periodic Hann) for float32 input.
    """
    signals = np.atleast_2d(np.asarray(signals, dtype=np.float32))
    half = MEL_N_FFT // 2
    padded = np.pad(signals, ((0, 0), (half, half)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_N_FFT, axis=-1)[:, ::MEL_HOP]
    # librosa windows in float64 and stores the STFT as complex64 before taking |.|**2
    spectrum = np.fft.rfft(frames * _HANN, axis=-1).astype(np.complex64)
    power = np.abs(spectrum) ** 2
    return np.matmul(_MEL_BASIS, power.transpose(0, 2, 1))


def p808_features(windows: np.ndarray) -> np.ndarray:
    """P.808 model input for each window: scaled log-mel, shape (batch, 900, N_MELS), float32.

    Per window: ``(power_to_db(mel, ref=max, top_db=80) + 40) / 40``, transposed to frames x mels.
    """
    mel = melspectrogram(np.asarray(windows)[:, :-P808_TRIM])
    log_mel = 10.0 * np.log10(np.maximum(POWER_FLOOR, mel))
    peak = mel.max(axis=(1, 2), keepdims=True)
    log_mel -= 10.0 * np.log10(np.maximum(POWER_FLOOR, peak))
    log_mel = np.maximum(log_mel, log_mel.max(axis=(1, 2), keepdims=True) - TOP_DB)
    return ((log_mel + 40.0) / 40.0).transpose(0, 2, 1).astype(np.float32)


def map_raw_scores(raw: np.ndarray, personalized: bool = False) -> np.ndarray:
    """Polynomial map of raw (sig, bak, ovr) rows (shape (n, 3)) to MOS, float64."""
    raw = np.asarray(raw, dtype=np.float64)
    maps = _POLY_MAPS[personalized]
    return np.stack([np.polyval(maps[name], raw[:, col])
                     for col, name in enumerate(("sig", "bak", "ovr"))], axis=1)


def default_providers() -> list[str]:
    """CUDA when onnxruntime offers it, CPU always as the fallback."""
    available = ort.get_available_providers()
    preferred = [CUDA_PROVIDER, "CPUExecutionProvider"]
    return [name for name in preferred if name in available]


class DnsmosGpuError(RuntimeError):
    """DNSMOS was given GPUs but onnxruntime cannot run it on CUDA."""


def cuda_providers() -> list[str]:
    """Providers for a DNSMOS worker that was given GPUs: CUDA first, or :class:`DnsmosGpuError`.

    The CPU build of onnxruntime has no CUDA provider, and onnxruntime would otherwise fall back
    to CPU silently, idling the GPU share the stage reserved.
    """
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu >= 1.21: CUDA/cuDNN from torch's wheels
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - missing libraries surface as a missing provider
            pass
    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise DnsmosGpuError(
            f"DNSMOS asks for GPUs (dnsmos.num_gpus > 0) but onnxruntime {ort.__version__} "
            f"offers only {available}: install the GPU build with pip install 'serec[gpu]' "
            f"(the onnxruntime-gpu package; uninstall onnxruntime first), or set "
            f"dnsmos.num_gpus: 0")
    return [CUDA_PROVIDER, "CPUExecutionProvider"]


def _graph_cut(model: onnx.ModelProto, inputs: list[str], outputs: list[str],
               dynamic: dict[str, dict[int, str]]) -> onnx.ModelProto:
    """The part of ``model`` from ``inputs`` to ``outputs``, with the named axes left free."""
    import onnx.utils

    part = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    for value in [*part.graph.input, *part.graph.output]:
        for axis, name in dynamic.get(value.name, {}).items():
            value.type.tensor_type.shape.dim[axis].dim_param = name
    del part.graph.value_info[:]  # shapes inferred for 900 frames do not hold for other lengths
    return part


def _same_padded_reach(part: onnx.ModelProto) -> int | None:
    """Frames by which the 2-D convolutions of ``part`` reach along time: their count when all
    are 3x3, stride 1, padding 1 (the 1-D convolutions are the kernel-1 STFT); else None."""
    import onnx.helper

    reach = 0
    for node in part.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        if kernel == [1]:
            continue
        if (kernel != [3, 3] or list(attrs.get("pads", [])) != [1, 1, 1, 1]
                or list(attrs.get("strides", [1, 1])) != [1, 1]
                or list(attrs.get("dilations", [1, 1])) != [1, 1]):
            return None
        reach += 1
    return reach


class SharedWindowsP835:
    """The P.835 model over all windows of one clip, sharing the work windows overlap in.

    The model frames a window (900 frames, 320 samples, hop 160) and applies an STFT and 3x3
    convolutions (stride 1, zero padding 1) before its first 2x2 pooling. Windows start every
    100 frames, so away from a window's edges those convolutions see the same frames in every
    window that covers them. They therefore run once over the frames the windows span; the
    ``reach`` frames at each window edge (where the padding differs) come from a run on the
    window's own first and last ``2 * reach`` frames; the rest of the model runs per window.
    Windows start on even frames, so the pooling grid agrees. Raw scores equal the whole
    model's up to float32 rounding (about 1e-6).

    Built by :meth:`from_model`, which returns None for a graph without that structure.
    """

    def __init__(self, prefix: ort.InferenceSession, suffix: ort.InferenceSession, reach: int,
                 max_windows_per_run: int) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.reach = reach
        self.max_windows_per_run = max_windows_per_run

    @classmethod
    def from_model(cls, path: Path, options: ort.SessionOptions, providers: list[str],
                   max_windows_per_run: int) -> SharedWindowsP835 | None:
        try:  # imported here: it takes about a second, and only scorers need it
            import onnx
            import onnx.shape_inference
        except ImportError as exc:
            raise ImportError("DNSMOS shares window work with the onnx package: pip install "
                              "'serec[cpu]' (or 'serec[gpu]'), which brings it") from exc
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        produced = {name for node in model.graph.node for name in node.output}
        if not {P835_FRAMES, P835_BEFORE_POOLING} <= produced:
            return None
        output = model.graph.output[0].name
        prefix = _graph_cut(model, [P835_FRAMES], [P835_BEFORE_POOLING],
                            {P835_FRAMES: {0: "batch", 1: "frames"},
                             P835_BEFORE_POOLING: {0: "batch", 2: "frames"}})
        suffix = _graph_cut(model, [P835_BEFORE_POOLING], [output],
                            {P835_BEFORE_POOLING: {0: "batch"}, output: {0: "batch"}})
        reach = _same_padded_reach(prefix)
        if not reach:
            return None

        def session(part: onnx.ModelProto) -> ort.InferenceSession:
            return ort.InferenceSession(part.SerializeToString(), options, providers=providers)

        return cls(session(prefix), session(suffix), reach, max_windows_per_run)

    def _prefix(self, frames: np.ndarray) -> np.ndarray:
        return self.prefix.run(None, {P835_FRAMES: frames})[0]

    def raw_scores(self, signal: np.ndarray, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
        """Raw (sig, bak, ovr) of shape (len(bounds), 3) for the windows ``bounds`` of
        ``signal`` (:func:`window_bounds` of a tiled clip)."""
        starts = [start // P835_FRAME_HOP for start, _ in bounds]
        span = starts[-1] + P835_WINDOW_FRAMES
        frames = np.lib.stride_tricks.sliding_window_view(
            signal[:(span - 1) * P835_FRAME_HOP + P835_FRAME], P835_FRAME)[::P835_FRAME_HOP]
        frames = np.ascontiguousarray(frames[None], dtype=np.float32)
        # In runs of at most max_windows_per_run windows' worth of frames (the memory bound),
        # each with `reach` frames more on both sides so that its own frames are exact.
        step, reach = self.max_windows_per_run * P835_WINDOW_FRAMES, self.reach
        shared = []
        for first in range(0, span, step):
            low, high = max(0, first - reach), min(span, first + step + reach)
            out = self._prefix(frames[:, low:high])
            shared.append(out[:, :, first - low:min(span, first + step) - low])
        shared_out = np.concatenate(shared, axis=2)
        edge = 2 * reach
        edges = self._prefix(np.concatenate(
            [frames[:, s + offset:s + offset + edge] for s in starts
             for offset in (0, P835_WINDOW_FRAMES - edge)]))
        raw = []
        for first in range(0, len(starts), self.max_windows_per_run):
            windows = []
            for i in range(first, min(len(starts), first + self.max_windows_per_run)):
                window = shared_out[0, :, starts[i]:starts[i] + P835_WINDOW_FRAMES].copy()
                window[:, :reach] = edges[2 * i, :, :reach]
                window[:, -reach:] = edges[2 * i + 1, :, -reach:]
                windows.append(window)
            raw.append(self.suffix.run(None, {P835_BEFORE_POOLING: np.stack(windows)})[0])
        return np.concatenate(raw).astype(np.float64)


class Dnsmos:
    """DNSMOS scorer holding both ONNX sessions; batches windows of many clips per ONNX run.

    A clip with several windows goes through :class:`SharedWindowsP835`: the same scores for
    about half the P.835 work at 6 s and a fifth at 20 s; single-window clips are batched
    through the whole model.

    Args:
        personalized: use the personalised P.835 model and its polynomial maps.
        providers: onnxruntime execution providers; default CUDA if available, else CPU.
        max_windows_per_run: most 9.01 s windows sent to a model in one run. It bounds memory:
            the P.835 model's activations take about 0.12 GB per window, and onnxruntime's CPU
            arena keeps its peak, so prefer ~8 on CPU workers and 64 on a GPU.
        intra_op_num_threads: onnxruntime threads per session; None lets onnxruntime choose.
        share_windows: run overlapping windows through :class:`SharedWindowsP835` (False: each
            window through the whole model, as the reference does).
    """

    def __init__(self, personalized: bool = False, providers: list[str] | None = None,
                 max_windows_per_run: int = 8, intra_op_num_threads: int | None = None,
                 share_windows: bool = True) -> None:
        if max_windows_per_run < 1:
            raise ValueError(f"max_windows_per_run must be >= 1, got {max_windows_per_run}")
        self.personalized = personalized
        self.max_windows_per_run = max_windows_per_run
        options = ort.SessionOptions()
        if intra_op_num_threads is not None:
            options.intra_op_num_threads = intra_op_num_threads
        # DNSMOS shares its cores with enhancer actors; idle intra-op threads that spin burn
        # CPU they need (12% more DNSMOS CPU time beside one busy core, no faster alone).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        primary_path, p808_path = model_paths(personalized)
        chosen = providers if providers is not None else default_providers()
        self._primary = ort.InferenceSession(str(primary_path), options, providers=chosen)
        self._p808 = ort.InferenceSession(str(p808_path), options, providers=chosen)
        if chosen and chosen[0] == CUDA_PROVIDER and CUDA_PROVIDER not in self.providers:
            raise DnsmosGpuError(
                f"onnxruntime offers {CUDA_PROVIDER} but could not start it (CUDA or cuDNN "
                f"libraries missing or no visible GPU; CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); the sessions would run on CPU")
        self._primary_input = self._primary.get_inputs()[0].name
        self._p808_input = self._p808.get_inputs()[0].name
        self._shared = SharedWindowsP835.from_model(
            primary_path, options, self.providers, max_windows_per_run) if share_windows else None
        silence = np.zeros((1, WINDOW_SAMPLES), dtype=np.float32)  # warm-up
        self._primary_raw(silence)
        self._p808_scores(silence)

    @property
    def providers(self) -> list[str]:
        """Execution providers the sessions actually use."""
        return self._primary.get_providers()

    def _primary_raw(self, windows: np.ndarray) -> np.ndarray:
        """Raw (sig, bak, ovr) of shape (n, 3) for a stack of windows, by the whole model."""
        return self._primary.run(None, {self._primary_input: windows})[0].astype(np.float64)

    def _p808_scores(self, windows: np.ndarray) -> np.ndarray:
        """P.808 of shape (n,) for a stack of windows."""
        p808 = self._p808.run(None, {self._p808_input: p808_features(windows)})[0]
        return p808[:, 0].astype(np.float64)

    def score(self, audio: np.ndarray, sr: int = TARGET_SR) -> DnsmosScores:
        """Score one clip (1-D float in [-1, 1] at 16 kHz)."""
        return self.score_batch([audio], sr)[0]

    def score_batch(self, audios: Sequence[np.ndarray], sr: int = TARGET_SR) -> list[DnsmosScores]:
        """Score many clips; windows of all clips share ONNX runs of up to max_windows_per_run."""
        tiled = [tile_to_window(validate_input(audio, sr)) for audio in audios]
        if not tiled:
            return []
        per_clip = [window_bounds(signal.size) for signal in tiled]
        # (clip index, start, stop) of every window across all clips, in clip order
        refs = [(clip, start, stop) for clip, bounds in enumerate(per_clip)
                for start, stop in bounds]
        shared = [self._shared is not None and len(bounds) > 1 for bounds in per_clip]
        raw = np.empty((len(refs), 3))
        p808 = np.empty(len(refs))
        for first in range(0, len(refs), self.max_windows_per_run):
            chunk = refs[first:first + self.max_windows_per_run]
            windows = np.stack([tiled[clip][start:stop] for clip, start, stop in chunk])
            whole = [i for i, (clip, _, _) in enumerate(chunk) if not shared[clip]]
            p808[first:first + len(chunk)] = self._p808_scores(windows)
            if whole:
                raw[first + np.array(whole)] = self._primary_raw(windows[whole])
        offsets = np.cumsum([0, *(len(bounds) for bounds in per_clip)])
        for clip, bounds in enumerate(per_clip):
            if shared[clip]:
                raw[offsets[clip]:offsets[clip + 1]] = self._shared.raw_scores(tiled[clip], bounds)
        mapped = map_raw_scores(raw, self.personalized)
        splits = offsets[1:-1]
        return [self._clip_scores(*parts) for parts in zip(
            np.split(mapped, splits), np.split(p808, splits), np.split(raw, splits), strict=True)]

    @staticmethod
    def _clip_scores(mapped: np.ndarray, p808: np.ndarray, raw: np.ndarray) -> DnsmosScores:
        sig, bak, ovr = mapped.mean(axis=0)
        sig_raw, bak_raw, ovr_raw = raw.mean(axis=0)
        return DnsmosScores(sig=float(sig), bak=float(bak), ovr=float(ovr),
                            p808=float(p808.mean()), sig_raw=float(sig_raw),
                            bak_raw=float(bak_raw), ovr_raw=float(ovr_raw))


def worker_dnsmos(use_gpu: bool = False, **settings: Any) -> Dnsmos:
    """The scorer of a worker: on CUDA when it was given GPUs (else :class:`DnsmosGpuError`,
    see :func:`cuda_providers`), on CPU otherwise; ``settings`` are :class:`Dnsmos` keywords."""
    providers = cuda_providers() if use_gpu else ["CPUExecutionProvider"]
    return Dnsmos(providers=providers, **settings)
