"""Clean English speech from espeak-ng, driven in-process through ctypes.

The shared library and its data come from the ``espeakng-loader`` wheel; no ``espeak-ng``
binary or subprocess is used. espeak-ng keeps synthesis state in C globals (pitch flutter
index, waveform phase, echo buffer) that survive ``espeak_Terminate``, so two identical
requests normally give slightly different samples. To make :func:`synthesize` a pure function
of ``(text, voice, sr)``, :class:`EspeakSynth` loads a private copy of the library for every
request and unloads it afterwards (a few ms per request), and fixes the seed of espeak-ng's own
noise generator (used by breathy voices; ``espeak_Initialize`` seeds it from the clock). One
instance exists per process; a lock serialises use.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from serec.audio import TARGET_SR, resample

# Constants from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EE_OK = 0
_EE_NOT_FOUND = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
RATE_MIN_WPM, RATE_MAX_WPM = 80, 450

_RAND_SEED = 12345
_BUFFER_MS = 500  # length of the sample blocks handed to the callback
_TRIM_THRESHOLD_DB = -40.0
_TRIM_MARGIN_S = 0.05
_TARGET_PEAK = 0.5


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, initialised or asked to synthesise."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (``language[+variant]``) with prosody settings.

    ``pitch`` and ``pitch_range`` are espeak-ng's 0-100 scales (50 is the voice's default).
    """

    name: str
    rate_wpm: int
    pitch: int
    pitch_range: int

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"voice name must be a non-empty token, got {self.name!r}")
        if not RATE_MIN_WPM <= self.rate_wpm <= RATE_MAX_WPM:
            raise ValueError(f"rate_wpm must be in [{RATE_MIN_WPM}, {RATE_MAX_WPM}], "
                             f"got {self.rate_wpm}")
        for field, value in (("pitch", self.pitch), ("pitch_range", self.pitch_range)):
            if not 0 <= value <= 100:
                raise ValueError(f"{field} must be in [0, 100], got {value}")

    @property
    def speaker_id(self) -> str:
        """Stable id, e.g. ``tts-en-us-f3-p60-pr50-r160``."""
        slug = self.name.lower().replace("+", "-")
        return f"tts-{slug}-p{self.pitch}-pr{self.pitch_range}-r{self.rate_wpm}"


DEMO_VOICES: tuple[Voice, ...] = (
    Voice("en-us", 175, 50, 50),
    Voice("en-us+m3", 160, 40, 45),
    Voice("en-gb-x-rp+m1", 150, 45, 60),
    Voice("en-gb-scotland+m7", 185, 55, 50),
    Voice("en-gb-x-gbclan+m2", 145, 35, 40),
    Voice("en-us+f3", 165, 60, 60),
    Voice("en+f2", 155, 55, 70),
    Voice("en-us-nyc+f4", 190, 50, 55),
    Voice("en-029+f1", 170, 65, 50),
    Voice("en-us+f5", 180, 45, 65),
)


class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT``; only passed through, the union is kept as an opaque pointer."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


class _EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` as returned by ``espeak_ListVoices``."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_EspeakEvent))


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the C signatures used here."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None


def _private_copy(library_path: str) -> str:
    """Path of a private copy of the library, so dlopen never shares an instance that another
    module loaded. Linux: an anonymous memfd (freed with the process); else a temp file."""
    with open(library_path, "rb") as source:
        image = source.read()
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("libespeak-ng-serec")
        with os.fdopen(fd, "wb", closefd=False) as target:
            target.write(image)
        return f"/proc/self/fd/{fd}"
    tmpdir = tempfile.mkdtemp(prefix="serec-espeak-")
    atexit.register(shutil.rmtree, tmpdir, ignore_errors=True)
    path = os.path.join(tmpdir, os.path.basename(library_path))
    with open(path, "wb") as target:
        target.write(image)
    return path


class EspeakSynth:
    """Process-wide handle on espeak-ng; get it with :func:`get_synth`."""

    def __init__(self, library_path: str | None = None, data_path: str | None = None) -> None:
        if library_path is None or data_path is None:
            try:
                import espeakng_loader
            except ImportError as exc:
                raise EspeakError("espeakng-loader is not installed") from exc
            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self._data_path = os.fsencode(data_path)
        self._library_copy = _private_copy(library_path)
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)
        with self._lock, self._loaded() as (_, sample_rate):
            self.sample_rate = sample_rate

    def _collect(self, wav, numsamples: int, events) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    @contextmanager
    def _loaded(self) -> Iterator[tuple[ctypes.CDLL, int]]:
        """Load, initialise, then terminate and unload a fresh library instance."""
        try:
            lib = ctypes.CDLL(self._library_copy, mode=os.RTLD_LOCAL)
        except OSError as exc:
            raise EspeakError(f"cannot load espeak-ng: {exc}") from exc
        try:
            _bind(lib)
            sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS,
                                                self._data_path, 0)
            if sample_rate <= 0:
                raise EspeakError(f"espeak_Initialize failed with data at {self._data_path!r}")
            try:
                lib.espeak_SetSynthCallback(self._callback)
                yield lib, sample_rate
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)

    def _check_variant(self, voice_name: str) -> None:
        """espeak-ng silently ignores an unknown ``+variant``; refuse it instead."""
        _, plus, variant = voice_name.partition("+")
        variant_file = os.path.join(os.fsdecode(self._data_path), "voices", "!v", variant)
        if plus and not os.path.isfile(variant_file):
            raise ValueError(f"espeak-ng has no voice variant {variant!r} (in {voice_name!r})")

    def synthesize_int16(self, text: str, voice: Voice) -> np.ndarray:
        """Raw int16 samples at :attr:`sample_rate`, exactly as espeak-ng produced them."""
        self._check_variant(voice.name)
        encoded = text.encode("utf-8") + b"\0"
        with self._lock, self._loaded() as (lib, _):
            status = lib.espeak_SetVoiceByName(voice.name.encode("utf-8"))
            if status == _EE_NOT_FOUND:
                raise ValueError(f"espeak-ng has no voice {voice.name!r}")
            if status != _EE_OK:
                raise EspeakError(f"espeak_SetVoiceByName({voice.name!r}) returned {status}")
            for parameter, value in ((_ESPEAK_RATE, voice.rate_wpm), (_ESPEAK_PITCH, voice.pitch),
                                     (_ESPEAK_RANGE, voice.pitch_range)):
                lib.espeak_SetParameter(parameter, value, 0)
            lib.espeak_ng_SetRandSeed(_RAND_SEED)
            self._chunks = []
            status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0,
                                      _ESPEAK_CHARS_UTF8, None, None)
            if status == _EE_OK:
                status = lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth returned {status} for {text!r}")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def list_voices(self, variants: bool = False) -> tuple[str, ...]:
        """Identifiers of the bundled voices (``gmw/en-US``...) or variants (``!v/f3``...)."""
        variant_language = ctypes.create_string_buffer(b"variant")
        spec = _EspeakVoice(languages=ctypes.cast(variant_language, ctypes.c_void_p))
        with self._lock, self._loaded() as (lib, _):
            found = lib.espeak_ListVoices(ctypes.byref(spec) if variants else None)
            identifiers = []
            for i in range(100_000):
                if not found[i]:
                    break
                identifiers.append(found[i].contents.identifier.decode("utf-8"))
        return tuple(sorted(identifiers))


_instance: EspeakSynth | None = None
_instance_pid: int | None = None
_instance_lock = threading.Lock()


def get_synth() -> EspeakSynth:
    """The process's :class:`EspeakSynth` (re-created in a forked child)."""
    global _instance, _instance_pid
    with _instance_lock:
        if _instance is None or _instance_pid != os.getpid():
            _instance = EspeakSynth()
            _instance_pid = os.getpid()
        return _instance


def _trim_silence(audio: np.ndarray, sr: int, margin_s: float = _TRIM_MARGIN_S,
                  threshold_db: float = _TRIM_THRESHOLD_DB) -> np.ndarray:
    """Cut leading/trailing quiet so exactly ``margin_s`` remains (zero-padded if needed)."""
    magnitude = np.abs(audio)
    active = np.flatnonzero(magnitude >= magnitude.max() * 10 ** (threshold_db / 20))
    margin = int(round(margin_s * sr))
    start, end = int(active[0]) - margin, int(active[-1]) + 1 + margin
    body = audio[max(start, 0):min(end, audio.size)]
    return np.pad(body, (max(-start, 0), max(end - audio.size, 0))).astype(np.float32)


def synthesize(text: str, voice: Voice, sr: int = TARGET_SR) -> np.ndarray:
    """Speak ``text`` with ``voice``: mono float32 at ``sr``, ~50 ms silence each side, peak 0.5.

    Deterministic: the same arguments always give the same samples.
    """
    if not text.strip():
        raise ValueError("text to synthesise is empty")
    synth = get_synth()
    raw = synth.synthesize_int16(text, voice)
    audio = resample(raw.astype(np.float32) / 32768.0, synth.sample_rate, sr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        raise ValueError(f"espeak-ng produced no audio for {text!r} with {voice.name!r}")
    audio = _trim_silence(audio, sr)
    return (audio * (_TARGET_PEAK / peak)).astype(np.float32)
