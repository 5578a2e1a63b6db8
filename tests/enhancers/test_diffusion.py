"""Diffusion enhancers: SGMSE+ end to end on a tiny random model, StoRM/CDiffuSE on checkouts.

SGMSE+ runs on CPU with a randomly initialised, tiny NCSN++ saved as a Lightning checkpoint
the way upstream saves them (state_dict, hyper_parameters, EMA). StoRM and CDiffuSE need
upstream source checkouts (``SEREC_STORM_SRC``, ``SEREC_CDIFFUSE_SRC``) and run on tiny
random weights too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import serec.enhancers.cdiffuse
import serec.enhancers.sgmse
import serec.enhancers.storm  # noqa: F401 - registers the kinds until the registry lists them
from serec.enhancers import build_enhancer, parse_enhancer_spec
from serec.enhancers.base import MissingDependencyError
from serec.enhancers.cdiffuse import UPSTREAM_MODULES as CDIFFUSE_MODULES
from serec.enhancers.checkpoints import (
    ModuleConflictError,
    UntrustedCheckpointError,
    clip_seed,
    import_from_checkout,
    source_checkout,
    training_only_modules,
)
from serec.enhancers.random_models import save_random_cdiffuse, save_random_sgmse
from serec.enhancers.sgmse import checkpoint_sample_rate, load_sgmse

SR = 16_000
BATCH_ATOL = 1e-4
"""Batched and single-clip network calls differ only by float rounding (kernel choice)."""


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A voiced-looking test clip: harmonic tone with syllable envelope plus noise."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    clip = 0.2 * envelope * tone + 0.05 * rng.standard_normal(t.size)
    return (clip / np.max(np.abs(clip)) * 0.6).astype(np.float32)


def enhance_and_check(enhancer, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Enhance ``clips`` as one batch: same shapes, finite, in range, changed; and the last
    clip alone, in another batch position, gets the same sampling noise (same output, to the
    float tolerance of batched versus single network calls)."""
    outputs = enhancer.enhance_batch(clips)
    for clip, out in zip(clips, outputs, strict=True):
        assert out.dtype == np.float32 and out.shape == clip.shape
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
        assert not np.allclose(out, clip, atol=1e-3)
    np.testing.assert_allclose(enhancer.enhance(clips[-1]), outputs[-1], atol=BATCH_ATOL)
    return outputs


def assert_batched_equals_alone(enhancer, clips: list[np.ndarray],
                                rng: np.random.Generator) -> None:
    """Each clip's output in a batch, and in the same batch shuffled, equals its output alone."""
    batched = enhancer.enhance_batch(clips)
    order = list(rng.permutation(len(clips)))
    shuffled = enhancer.enhance_batch([clips[i] for i in order])
    for index, (clip, out) in enumerate(zip(clips, batched, strict=True)):
        alone = enhancer.enhance(clip)
        assert out.shape == clip.shape and np.isfinite(out).all()
        np.testing.assert_allclose(out, alone, atol=BATCH_ATOL)
        np.testing.assert_allclose(shuffled[order.index(index)], alone, atol=BATCH_ATOL)


# ----- configuration gate (no upstream package needed) ----------------------------------------
def test_untrusted_checkpoint_is_refused_before_the_file_is_touched(tmp_path: Path) -> None:
    never_created = tmp_path / "never_created.ckpt"
    with pytest.raises(UntrustedCheckpointError, match="trust_checkpoint: true"):
        parse_enhancer_spec("sgmse_tiny", {"kind": "sgmse", "checkpoint": str(never_created)})
    with pytest.raises(UntrustedCheckpointError, match="refusing to load"):
        build_enhancer("sgmse_tiny", {"kind": "sgmse", "checkpoint": str(never_created),
                                      "trust_checkpoint": False})
    assert not never_created.exists()


@pytest.mark.parametrize("entry, message", [
    ({"kind": "sgmse", "trust_checkpoint": True}, "'checkpoint' is required"),
    ({"kind": "sgmse", "checkpoint": "x.ckpt", "trust_checkpoint": True, "N": 0}, "'N'"),
    ({"kind": "sgmse", "checkpoint": "x.ckpt", "trust_checkpoint": True,
      "corrector": "euler"}, "'corrector'"),
    ({"kind": "sgmse", "checkpoint": "x.ckpt", "trust_checkpoint": True, "t_eps": 2.0},
     "'t_eps'"),
    ({"kind": "storm", "checkpoint": "x.ckpt", "trust_checkpoint": True}, "'source_dir'"),
    ({"kind": "storm", "source_dir": "/s", "checkpoint": "x.ckpt"}, "trust_checkpoint"),
    ({"kind": "storm", "source_dir": "/s", "checkpoint": "x.ckpt", "trust_checkpoint": True,
      "mode": "both"}, "'mode'"),
    ({"kind": "cdiffuse", "checkpoint": "w.pt"}, "'source_dir'"),
    ({"kind": "cdiffuse", "source_dir": "/s"}, "'checkpoint'"),
])
def test_bad_entries_fail_at_parse_time(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_enhancer_spec("diffusion", entry)


def test_missing_checkpoint_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint .*absent.ckpt"):
        build_enhancer("sgmse_tiny", {"kind": "sgmse", "checkpoint": str(tmp_path / "absent.ckpt"),
                                      "trust_checkpoint": True})


def test_checkpoint_sample_rate_follows_backbone_then_hparam() -> None:
    assert checkpoint_sample_rate("ncsnpp_48k", None) == 48_000
    assert checkpoint_sample_rate("ncsnpp", None) == 16_000
    assert checkpoint_sample_rate("ncsnpp_v2", 48_000) == 48_000


def test_clip_seed_depends_on_content_and_seed(rng: np.random.Generator) -> None:
    clip = speech_like(rng, 0.1)
    assert clip_seed(clip, 0) == clip_seed(clip.copy(), 0)
    assert clip_seed(clip, 0) != clip_seed(clip, 1)
    assert clip_seed(clip, 0) != clip_seed(clip[::-1], 0)
    assert 0 <= clip_seed(clip, 0) < 2**63


def test_training_only_stand_in_raises_when_called() -> None:
    name = "serec_no_such_module_for_tests"
    with training_only_modules([name]) as stood_in:
        assert stood_in == [name]
        module = sys.modules[name]
        loader = module.load  # attribute access works, so module-level imports succeed
        with pytest.raises(MissingDependencyError, match=f"{name}.load was called"):
            loader("x.wav")
    assert name not in sys.modules


def test_import_from_checkout_refuses_a_foreign_module_of_the_same_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "json.py").write_text("RAISE = 1\n")
    with pytest.raises(ModuleConflictError, match="module 'json' in this process comes from"):
        import_from_checkout(checkout, "json", ["json"], "test")
    (checkout / "serec_checkout_probe.py").write_text("VALUE = 7\n")
    module = import_from_checkout(checkout, "serec_checkout_probe", ["serec_checkout_probe"],
                                  "test")
    assert module.VALUE == 7
    assert sys.path[0] == str(checkout)
    monkeypatch.delitem(sys.modules, "serec_checkout_probe")


# ----- SGMSE+ end to end on a tiny random model -----------------------------------------------
SGMSE_SOURCE = os.environ.get("SEREC_SGMSE_SRC") or None
"""A sp-uhh/sgmse checkout to load instead of the installed package (needed where CUDA is)."""


def installed_sgmse_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("sgmse")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the sgmse package is not installed here")
    return Path(next(iter(spec.submodule_search_locations)))


def test_package_without_kernel_sources_is_refused_where_cuda_is(monkeypatch) -> None:
    import torch

    from serec.enhancers.sgmse import CUDA_KERNEL_SOURCES

    package = installed_sgmse_dir()
    if all((package / source).is_file() for source in CUDA_KERNEL_SOURCES):
        pytest.skip(f"the sgmse package at {package} ships its CUDA kernel sources")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(MissingDependencyError, match="'source_dir' to a checkout"):
        load_sgmse("test")


def test_source_dir_loads_sgmse_from_a_checkout(tmp_path: Path) -> None:
    """A copy of the installed package laid out as a checkout is what gets imported."""
    import shutil
    import subprocess

    from serec.enhancers.sgmse import CUDA_KERNEL_SOURCES

    checkout = tmp_path / "sgmse-checkout"
    shutil.copytree(installed_sgmse_dir(), checkout / "sgmse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for source in CUDA_KERNEL_SOURCES:  # never compiled here: CUDA is hidden below
        (checkout / "sgmse" / source).touch()
    script = ("import sys; from serec.enhancers.sgmse import load_sgmse; "
              "upstream = load_sgmse('test', sys.argv[1]); "
              "print(sys.modules[upstream.ScoreModel.__module__].__file__)")
    done = subprocess.run([sys.executable, "-c", script, str(checkout)], capture_output=True,
                          text=True, timeout=240, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip().splitlines()[-1]) == checkout / "sgmse" / "model.py"


@pytest.fixture(scope="module")
def sgmse_upstream():
    try:
        return load_sgmse("test", SGMSE_SOURCE)
    except MissingDependencyError as exc:
        pytest.skip(f"the sgmse package is not importable here: {exc}")


@pytest.fixture(scope="module")
def tiny_sgmse_checkpoint(sgmse_upstream, tmp_path_factory) -> tuple[Path, list]:
    """A random 4-level NCSN++ saved like upstream's Lightning checkpoints; returns its EMA."""
    path = tmp_path_factory.mktemp("sgmse") / "tiny.ckpt"
    return path, save_random_sgmse(path, sgmse_upstream)


def tiny_entry(path: Path, **overrides) -> dict:
    return {"kind": "sgmse", "checkpoint": str(path), "trust_checkpoint": True, "N": 3,
            "corrector": "none", "source_dir": SGMSE_SOURCE, **overrides}


@pytest.fixture(scope="module")
def tiny_sgmse(tiny_sgmse_checkpoint):
    return build_enhancer("sgmse_tiny", tiny_entry(tiny_sgmse_checkpoint[0]))


@pytest.mark.timeout(300)
def test_sgmse_loads_ema_weights_at_the_checkpoint_rate(tiny_sgmse, tiny_sgmse_checkpoint):
    import torch

    assert tiny_sgmse.native_sr == 16_000
    assert tiny_sgmse.pad_mode == "zero_pad"
    for loaded, ema in zip(tiny_sgmse.model.dnn.parameters(), tiny_sgmse_checkpoint[1],
                           strict=True):
        torch.testing.assert_close(loaded.detach(), ema)


@pytest.mark.timeout(300)
def test_sgmse_output_is_aligned_finite_and_reproducible(tiny_sgmse, rng) -> None:
    import torch

    clip_a, clip_b = speech_like(rng, 0.25), speech_like(rng, 0.19)
    state_before = torch.random.get_rng_state()
    enhance_and_check(tiny_sgmse, [clip_a, clip_b])
    assert torch.equal(torch.random.get_rng_state(), state_before)  # global RNG untouched
    silent = np.zeros(4000, dtype=np.float32)
    np.testing.assert_array_equal(tiny_sgmse.enhance(silent), silent)


@pytest.mark.timeout(300)
def test_sgmse_seed_changes_the_sample(tiny_sgmse, tiny_sgmse_checkpoint, rng) -> None:
    clip = speech_like(rng, 0.25)
    other = build_enhancer("sgmse_seed1", tiny_entry(tiny_sgmse_checkpoint[0], seed=1))
    reference = tiny_sgmse.enhance(clip)
    reseeded = other.enhance(clip)
    assert reseeded.shape == reference.shape
    assert np.abs(reseeded - reference).max() > 1e-4


@pytest.mark.timeout(300)
@pytest.mark.parametrize("overrides", [{}, {"corrector": "ald"},
                                       {"max_chunk_seconds": 0.3, "chunk_overlap_seconds": 0.05}],
                         ids=["pc", "pc-ald", "chunked"])
def test_sgmse_batched_output_equals_the_one_clip_output(tiny_sgmse_checkpoint, rng,
                                                         overrides) -> None:
    """Clips of three padded lengths, one long enough to be chunked, in one batch of 6 and
    shuffled: each output equals the clip enhanced alone."""
    enhancer = build_enhancer("sgmse_batched", tiny_entry(tiny_sgmse_checkpoint[0], max_batch=4,
                                                          **overrides))
    assert enhancer.batch_limit() == 4
    clips = [speech_like(rng, s) for s in (0.25, 0.19, 0.5, 0.23, 0.45, 0.9)]
    assert len({enhancer.bucket_key(c.size) for c in clips}) == 3
    assert_batched_equals_alone(enhancer, clips, rng)


def test_sgmse_coupled_sampler_runs_one_clip_at_a_time(tiny_sgmse_checkpoint) -> None:
    """The langevin corrector's step uses the batch-mean gradient norm (the OUVE ODE sampler,
    one solve_ivp over the batch, is limited the same way)."""
    enhancer = build_enhancer("sgmse_coupled", tiny_entry(tiny_sgmse_checkpoint[0],
                                                          corrector="langevin"))
    assert enhancer.batch_limit() == 1


def test_sgmse_bucket_frames_must_fit_the_network() -> None:
    with pytest.raises(ValueError, match="bucket_frames"):
        parse_enhancer_spec("sgmse", {"kind": "sgmse", "checkpoint": "x.ckpt",
                                      "trust_checkpoint": True, "bucket_frames": 100})


@pytest.mark.timeout(300)
def test_sgmse_on_cuda_matches_the_cpu_weights(tiny_sgmse, tiny_sgmse_checkpoint, rng) -> None:
    """GPU only: ``num_gpus`` puts the model and the sampling on CUDA, reproducibly."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    on_gpu = build_enhancer("sgmse_gpu", tiny_entry(tiny_sgmse_checkpoint[0],
                                                    resources={"num_gpus": 1}))
    assert on_gpu.device == "cuda"
    assert all(p.is_cuda for p in on_gpu.model.parameters())
    for gpu, cpu in zip(on_gpu.model.dnn.parameters(), tiny_sgmse.model.dnn.parameters(),
                        strict=True):
        torch.testing.assert_close(gpu.detach().cpu(), cpu.detach())
    clip_a, clip_b = speech_like(rng, 0.25), speech_like(rng, 0.19)
    enhance_and_check(on_gpu, [clip_a, clip_b])


# ----- StoRM and CDiffuSE on upstream checkouts -------------------------------------------------
def checkout_from_env(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set (point it at an upstream source checkout)")
    return Path(value)


@contextlib.contextmanager
def forget_checkout_imports():
    """Undo what importing upstream checkouts adds to ``sys.path`` and ``sys.modules``.

    Their top-level modules have generic names (``model``, ``params``, ``sgmse``) that must not
    leak into the rest of the test session.
    """
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if name.split(".")[0] in ("sgmse", *CDIFFUSE_MODULES):
                del sys.modules[name]


def build_or_skip(name: str, entry: dict):
    """Build an enhancer; skip (naming the package) when its environment lacks a dependency."""
    try:
        return build_enhancer(name, entry)
    except MissingDependencyError as exc:
        pytest.skip(f"this environment cannot run {entry['kind']}: {exc}")


@pytest.fixture(scope="module")
def tiny_cdiffuse_checkpoints(tmp_path_factory) -> Iterator[tuple[Path, Path, Path]]:
    """(checkout, plain checkpoint, checkpoint pickling an upstream object) for a tiny DiffuSE."""
    checkout = checkout_from_env("SEREC_CDIFFUSE_SRC")
    with forget_checkout_imports():
        yield (checkout, *save_random_cdiffuse(checkout, tmp_path_factory.mktemp("cdiffuse")))


@pytest.mark.timeout(300)
def test_cdiffuse_tiny_model_end_to_end(tiny_cdiffuse_checkpoints, rng) -> None:
    checkout, plain, _ = tiny_cdiffuse_checkpoints
    entry = {"kind": "cdiffuse", "source_dir": str(checkout), "checkpoint": str(plain)}
    enhancer = build_or_skip("cdiffuse_tiny", entry)
    assert enhancer.native_sr == 16_000
    assert len(enhancer.schedule[0]) == 6  # upstream's fast inference schedule
    assert enhancer.model.params.residual_channels == 8  # architecture from the checkpoint
    clip_a, clip_b = speech_like(rng, 0.3), speech_like(rng, 0.21)
    first = enhance_and_check(enhancer, [clip_a, clip_b])
    reseeded = build_or_skip("cdiffuse_seed1", {**entry, "seed": 1}).enhance(clip_a)
    assert np.abs(reseeded - first[0]).max() > 1e-4


@pytest.mark.timeout(300)
def test_cdiffuse_batched_output_equals_the_one_clip_output(tiny_cdiffuse_checkpoints,
                                                            rng) -> None:
    checkout, plain, _ = tiny_cdiffuse_checkpoints
    enhancer = build_or_skip("cdiffuse_batched", {
        "kind": "cdiffuse", "source_dir": str(checkout), "checkpoint": str(plain),
        "max_batch": 4, "max_chunk_seconds": 0.6, "chunk_overlap_seconds": 0.1})
    clips = [speech_like(rng, s) for s in (0.3, 0.21, 0.5, 0.27, 1.4)]
    assert len({enhancer.bucket_key(c.size) for c in clips}) == 2
    assert_batched_equals_alone(enhancer, clips, rng)


@pytest.mark.timeout(300)
def test_cdiffuse_reverse_process_equals_upstream_predict(tiny_cdiffuse_checkpoints,
                                                          rng) -> None:
    """With no extra padding, one clip's output equals upstream's ``inference.predict`` given
    the same noise draws."""
    import torch

    from serec.enhancers.batching import item_generators, per_item_noise
    from serec.enhancers.checkpoints import clip_seed

    checkout, plain, _ = tiny_cdiffuse_checkpoints
    enhancer = build_or_skip("cdiffuse_exact", {"kind": "cdiffuse", "source_dir": str(checkout),
                                                "checkpoint": str(plain), "bucket_frames": 1})
    clip = speech_like(rng, 0.3)
    params = enhancer.model.params
    spectrum, _, _ = enhancer._preprocess.make_spectrum(y=clip, FRAMELENGTH=params.n_fft,
                                                        SHIFT=params.hop_samples)
    with per_item_noise(item_generators([clip_seed(clip, 0)], "cpu")):
        upstream, _ = enhancer._inference.predict(
            torch.from_numpy(np.ascontiguousarray(spectrum, dtype=np.float32)), enhancer.model,
            clip, *enhancer.schedule, device=torch.device("cpu"))
    np.testing.assert_allclose(enhancer.enhance(clip), upstream[0, :clip.size].numpy(),
                               atol=1e-5)


@pytest.mark.timeout(300)
def test_cdiffuse_pickled_checkpoint_needs_trust(tiny_cdiffuse_checkpoints) -> None:
    checkout, _, pickled = tiny_cdiffuse_checkpoints
    entry = {"kind": "cdiffuse", "source_dir": str(checkout), "checkpoint": str(pickled)}
    with pytest.raises(UntrustedCheckpointError, match="trust_checkpoint: true"):
        build_or_skip("cdiffuse_untrusted", entry)
    trusted = build_or_skip("cdiffuse_trusted", {**entry, "trust_checkpoint": True})
    assert trusted.model.params.residual_layers == 2


@pytest.mark.timeout(600)
def test_storm_tiny_model_on_a_checkout(tmp_path: Path, rng) -> None:
    """GPU only (StoRM compiles CUDA kernels when imported); a tiny random StoRM model."""
    checkout = checkout_from_env("SEREC_STORM_SRC")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("StoRM needs CUDA: its backbones compile CUDA kernels when imported")
    from serec.enhancers.storm import CHECKOUT_MARKERS

    with forget_checkout_imports():
        run_tiny_storm(source_checkout(checkout, "test", "source_dir", CHECKOUT_MARKERS),
                       tmp_path, rng)


def run_tiny_storm(sources: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    import torch

    from serec.enhancers.storm import TRAINING_ONLY_MODULES

    try:
        with training_only_modules(TRAINING_ONLY_MODULES):
            data_module = import_from_checkout(sources, "sgmse.data_module", ["sgmse"], "test")
            model_module = import_from_checkout(sources, "sgmse.model", ["sgmse"], "test")
        import pytorch_lightning
    except ImportError as exc:
        pytest.skip(f"this environment cannot import StoRM: {exc}")
    torch.manual_seed(0)
    model = model_module.StochasticRegenerationModel(
        backbone_denoiser="ncsnpp", backbone_score="ncsnpp", sde="ouve",
        data_module_cls=data_module.SpecsDataModule, nf=8, ch_mult=(1, 1, 1, 1),
        theta=1.5, sigma_min=0.05, sigma_max=0.5, N=30)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": pytorch_lightning.__version__}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "storm_tiny.ckpt")
    entry = {"kind": "storm", "source_dir": str(sources),
             "checkpoint": str(tmp_path / "storm_tiny.ckpt"), "trust_checkpoint": True,
             "N": 5, "resources": {"num_gpus": 1}}
    enhancer = build_or_skip("storm_tiny", entry)
    clip = speech_like(rng, 1.0)
    out = enhancer.enhance(clip)
    assert out.shape == clip.shape and np.isfinite(out).all()
    np.testing.assert_array_equal(enhancer.enhance(clip), out)
    reseeded = build_or_skip("storm_seed1", {**entry, "seed": 1}).enhance(clip)
    assert np.abs(reseeded - out).max() > 1e-4
    assert enhancer.batch_limit() == 16
    clips = [speech_like(rng, s) for s in (1.0, 0.9, 0.5, 0.45, 1.3)]
    assert len({enhancer.bucket_key(c.size) for c in clips}) >= 2
    assert_batched_equals_alone(enhancer, clips, rng)


def test_storm_checkout_imports_as_its_own_sgmse() -> None:
    """Without SGMSE+ installed, 'sgmse' resolves to the StoRM checkout (CPU-safe module)."""
    import importlib.util

    from serec.enhancers.storm import CHECKOUT_MARKERS

    checkout = checkout_from_env("SEREC_STORM_SRC")
    sources = source_checkout(checkout, "test", "source_dir", CHECKOUT_MARKERS)
    if "sgmse" in sys.modules or importlib.util.find_spec("sgmse") is not None:
        pytest.skip("a 'sgmse' package is installed here; StoRM needs an environment without it")
    with forget_checkout_imports():
        sdes = import_from_checkout(sources, "sgmse.sdes", ["sgmse"], "test")
        assert Path(sdes.__file__).resolve() == sources / "sgmse" / "sdes.py"
        assert "ouve" in sdes.SDERegistry.get_all_names()


def test_storm_checkout_is_refused_beside_the_sgmse_package(sgmse_upstream) -> None:
    """StoRM's namespace package 'sgmse' cannot join a process holding SGMSE+'s 'sgmse'."""
    from serec.enhancers.storm import CHECKOUT_MARKERS

    checkout = checkout_from_env("SEREC_STORM_SRC")
    sources = source_checkout(checkout, "test", "source_dir", CHECKOUT_MARKERS)
    with pytest.raises(ModuleConflictError, match="before import, module 'sgmse'"):
        import_from_checkout(sources, "sgmse.model", ["sgmse"], "test")


def test_storm_refuses_cpu_before_importing_upstream(tmp_path: Path) -> None:
    entry = {"kind": "storm", "source_dir": str(tmp_path), "checkpoint": str(tmp_path / "x.ckpt"),
             "trust_checkpoint": True}
    with pytest.raises(RuntimeError, match="CUDA only"):
        build_enhancer("storm_cpu", entry)
    assert "sgmse.model" not in sys.modules or not hasattr(sys.modules["sgmse.model"],
                                                           "StochasticRegenerationModel")
