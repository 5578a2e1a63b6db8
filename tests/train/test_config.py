"""TrainConfig parsing and search spaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serec.train.config import TrainConfig
from serec.train.tune import load_search_space, parse_search_space

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def test_defaults_follow_the_thesis():
    config = TrainConfig()
    assert config.lr == 2.5e-5 and config.label_smoothing == 0.1
    assert config.backbone_lr_ratio == 0.5 and config.weight_decay == 1e-4


def test_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown config key 'train.lrate'"):
        TrainConfig.from_dict({"lrate": 1e-3})


def test_from_dict_checks_types_and_values():
    config = TrainConfig.from_dict({"lr": "1e-4", "batch_size": 16.0, "majority": None,
                                    "cpus_per_worker": 0.5, "tune_folds": [1, 2]})
    assert config.lr == 1e-4 and config.batch_size == 16 and isinstance(config.batch_size, int)
    for bad, match in [({"batch_size": 2.5}, "integer"), ({"use_gpu": "yes"}, "true or false"),
                       ({"lr": -1}, "must be > 0"), ({"dropout": 1.5}, r"\[0, 1\]"),
                       ({"tune_folds": 3}, "list")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_dict(bad)


def test_yaml_merges_over_a_base(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"lr": 3e-4, "dropout": 0.3}))
    config = TrainConfig.from_yaml(path, base=TrainConfig(epochs=3, max_length=128))
    assert (config.lr, config.dropout, config.epochs, config.max_length) == (3e-4, 0.3, 3, 128)


@pytest.mark.parametrize("stage", ["gatekeeper", "expert"])
def test_shipped_search_spaces_parse(stage):
    space = load_search_space(REPO / "tune" / f"{stage}.yaml")
    assert {"lr", "dropout", "head_hidden"} <= set(space)
    lr = space["lr"].sample()
    assert 1e-5 <= lr <= 3e-4


def test_search_space_errors():
    with pytest.raises(ValueError, match="unknown train config key 'lrr'"):
        parse_search_space({"lrr": {"type": "uniform", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match="cannot be tuned"):
        parse_search_space({"max_length": {"type": "choice", "values": [128]}})
    with pytest.raises(ValueError, match="type one of"):
        parse_search_space({"lr": {"type": "normal", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match="low < high"):
        parse_search_space({"lr": {"type": "loguniform", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match="values"):
        parse_search_space({"head_hidden": {"type": "choice", "values": []}})
