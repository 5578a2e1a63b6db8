"""Configs load, and a bad key fails before any work with a message that names it."""

from __future__ import annotations

import pytest
import yaml

from serec.config import CONFIG_DIR, ConfigError, load_config


@pytest.mark.parametrize("name", ["local.yaml", "paper.yaml"])
def test_shipped_configs_load(name):
    config = load_config(name)
    assert config.enhancers and config.candidates == list(config.enhancers)


def test_paper_config_is_the_thesis_setup():
    config = load_config("paper.yaml")
    assert set(config.enhancers) == {"sgmse", "cdiffuse", "storm"}
    assert config.train["lr"] == 2.5e-5 and config.train["epochs"] == 50
    assert config.train["batch_size"] == 32 and config.train["weight_decay"] == 1e-4
    assert config.dnsmos.num_gpus > 0
    # the thesis label rule: one unshifted framing, no tie margin
    assert config.label.framings.all_shifts_ms == [0.0] and config.label.tie_margin == 0


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"label": {"fail_treshold": 2.0}}, "label.fail_treshold"),
        ({"dnsmos": {"num_cpus": "two"}}, "dnsmos.num_cpus"),
        ({"label": {"decode": {"batch": 4}}}, "label.decode.batch"),
        ({"bogus": 1}, "bogus"),
        ({"train": {"lrr": 0.1}}, "lrr"),
        ({"enhancers": {"dfn": {"kind": "deepfilternet3", "atten_db": 3}}}, "atten_db"),
        ({"enhancers": {"x": {"kind": "no_such_kind"}}}, "no_such_kind"),
        ({"enhancers": {"x": {"kind": "passthrough", "resources": {"gpus": 1}}}}, "gpus"),
        ({"label": {"candidates": ["nope"]}}, "nope"),
        ({"label": {"framings": {"shifts_ms": [0, 5]}}}, r"label\.framings\.shifts_ms\[0\]"),
        ({"label": {"framings": {"shifts_ms": [5, 80]}}}, r"label\.framings\.shifts_ms\[1\]"),
        ({"label": {"framings": {"shifts_ms": [5, 5]}}}, "must not repeat"),
        ({"label": {"framings": {"score": "max"}}}, "label.framings.score"),
        ({"label": {"tie_margin": -0.1}}, "label.tie_margin"),
        ({"train": {"soft_labels": "yes"}}, "train.soft_labels"),
    ],
)
def test_bad_keys_are_named(tmp_path, patch, needle):
    base = yaml.safe_load((CONFIG_DIR / "local.yaml").read_text())
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "enhancers":
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match=needle):
        load_config(path)


def test_missing_file_is_a_config_error():
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such/config.yaml")


def test_yaml_syntax_error_is_a_config_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("enhancers: {passthrough: {}\nlabel: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML \(line \d+\)"):
        load_config(path)


def test_enhancer_parameter_errors_go_through_the_one_converter(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("enhancers: {sg: {kind: spectral_gate, n_fft: 1.5}}\n")
    with pytest.raises(ConfigError, match="enhancer 'sg' .*config key 'n_fft' must be an "
                                          "integer, got 1.5"):
        load_config(path)
