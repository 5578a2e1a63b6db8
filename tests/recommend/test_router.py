"""The deployed router: features on the fly, threshold, expert only on routed clips."""

from __future__ import annotations

import os

import numpy as np
import pytest

from serec.evaluate.ensemble import ROUTER_CHOICE_FILE, THRESHOLD_FILE
from serec.recommend.router import (
    FeaturesRouter,
    Router,
    SingleSystemRouter,
    chosen_router,
    deployed_system,
    load_router,
    resolve_threshold,
)
from serec.train.features_router import train_boosted
from tests.evaluate.tinyrun import build_tiny_run, synth, tiny_config

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("linear"), ast_stages=(),
                          stages=("gatekeeper", "expert"))


def _clips(seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synth(kind, rng, 1.5) for kind in ("speech", "tone", "noise", "speech")]


def test_routes_each_kind_of_clip_to_its_label(linear_run):
    router = Router.from_run(linear_run, 0.5, "passthrough")
    out = router.route(_clips())
    assert list(out["label"]) == ["rnnoise", "gate", "all_failed", "rnnoise"]
    assert list(out["system"]) == ["rnnoise", "gate", "passthrough", "rnnoise"]
    assert list(out["routed_to_expert"]) == [False, True, True, False]
    probs = out[["p_rnnoise", "p_all_failed", "p_gate"]].to_numpy()
    assert np.isnan(probs[[0, 3], 1:]).all()                 # the expert never ran on these
    np.testing.assert_allclose(probs[[1, 2]].sum(axis=1), 1.0)
    np.testing.assert_allclose(out["confidence"], [probs[0, 0], probs[1, 2], probs[2, 1],
                                                   probs[3, 0]])
    assert (out["router_s"] > 0).all()


def test_threshold_moves_clips_between_the_stages(linear_run):
    router = Router.from_run(linear_run, 0.0, "passthrough")
    assert not router.route(_clips())["routed_to_expert"].any()
    router = Router.from_run(linear_run, 1.01, "rnnoise")
    out = router.route(_clips())
    assert out["routed_to_expert"].all()
    assert set(out["label"]) <= {"gate", "all_failed"}
    assert set(out["system"]) <= {"gate", "rnnoise"}  # all_failed -> fallback rnnoise


def test_ast_stages_and_expert_only_features(tmp_path):
    run = build_tiny_run(tmp_path, counts={"rnnoise": 8, "gate": 4, "all_failed": 4},
                         ast_stages=("gatekeeper", "expert"), stages=("gatekeeper", "expert"))
    out = Router.from_run(run, 1.01, "passthrough").route(_clips())
    assert set(out["label"]) <= {"gate", "all_failed"}
    np.testing.assert_allclose(out[["p_rnnoise", "p_all_failed", "p_gate"]].sum(axis=1), 1.0)
    assert (out["features_s"] > 0).all() and (out["expert_s"] > 0).all()
    kept = Router.from_run(run, 0.0, "passthrough").route(_clips())
    assert (kept["label"] == "rnnoise").all()
    # the AST gatekeeper needs no CE/KL; only clips sent to the hybrid expert pay for them
    assert (kept["features_s"] == 0).all() and (kept["expert_s"] == 0).all()
    assert (kept["spectrogram_s"] > 0).all()


def test_threshold_precedence(linear_run):
    assert resolve_threshold(linear_run, tiny_config()) == (0.5, "gatekeeper cards")
    linear_run.write_json(THRESHOLD_FILE, {"threshold": 0.37})
    try:
        assert resolve_threshold(linear_run, tiny_config()) == (0.37, THRESHOLD_FILE)
        assert resolve_threshold(linear_run, tiny_config(threshold=0.6))[0] == 0.6
    finally:
        os.remove(linear_run.path(THRESHOLD_FILE))


def test_features_router_routes_and_trades_quality_for_compute(tmp_path):
    run = build_tiny_run(tmp_path, ast_stages=(), stages=("gatekeeper", "expert"))
    train_boosted(run)
    assert chosen_router(run) == "two_stage"  # evaluate has chosen nothing yet
    assert isinstance(load_router(run, 0.5, "passthrough"), Router)
    run.write_json(ROUTER_CHOICE_FILE, {"router": "boosted"})
    router = load_router(run, 0.5, "passthrough")
    assert isinstance(router, FeaturesRouter)
    out = router.route(_clips())
    assert list(out["label"]) == ["rnnoise", "gate", "all_failed", "rnnoise"]
    assert list(out["system"]) == ["rnnoise", "gate", "passthrough", "rnnoise"]
    probs = out[[f"p_{c}" for c in router.classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (out["router_s"] > 0).all() and not out["routed_to_expert"].any()
    # a large cost weight sends every clip to the cheapest system (passthrough: no compute)
    thrifty = FeaturesRouter.from_run(run, "passthrough", cost_weight=1e4)
    assert (thrifty.route(_clips())["system"] == "passthrough").all()
    assert len(router.route([])) == 0
    # evaluate's deferral: keep gate unless another label leads it by more than the margin
    run.write_json(ROUTER_CHOICE_FILE, {"router": "boosted", "defer_to": "gate", "margin": 1.0})
    deferring = load_router(run, 0.5, "passthrough")
    assert (deferring.defer_to, deferring.margin) == ("gate", 1.0)
    assert list(deferring.route(_clips())["system"]) == ["gate"] * 4
    loose = FeaturesRouter.from_run(run, "passthrough", defer_to="gate", margin=0.0)
    assert list(loose.route(_clips())["label"]) == list(out["label"])
    with pytest.raises(ValueError, match="cannot defer to 'dfn'"):
        FeaturesRouter.from_run(run, "passthrough", defer_to="dfn", margin=0.5)
    # no router beat the best single system on validation: every clip goes to it, for free
    run.write_json(ROUTER_CHOICE_FILE, {"router": "best_single", "system": "gate"})
    single = load_router(run, 0.5, "passthrough")
    assert isinstance(single, SingleSystemRouter) and deployed_system(run) == "gate"
    out = single.route(_clips())
    assert list(out["system"]) == ["gate"] * 4 and (out["router_s"] == 0).all()
    assert set(single.classes) >= {"rnnoise", "gate", "all_failed"}
    np.testing.assert_allclose(out[[f"p_{c}" for c in single.classes]].sum(axis=1), 1.0)
    assert set(out.columns) == set(router.route(_clips()).columns)


def test_features_router_on_predicted_ovr(tmp_path):
    run = build_tiny_run(tmp_path, ast_stages=(), stages=())
    train_boosted(run, target="ovr")
    router = FeaturesRouter.from_run(run, "passthrough")
    assert router.classes == ["gate", "rnnoise"]  # systems only: no all_failed class
    out = router.route(_clips())
    assert list(out["system"])[:2] == ["rnnoise", "gate"]
    np.testing.assert_allclose(out[[f"p_{c}" for c in router.classes]].sum(axis=1), 1.0)
    # a large cost weight (OVR per second on predicted OVR) picks the cheaper system
    thrifty = FeaturesRouter.from_run(run, "passthrough", cost_weight=1e4)
    cheaper = router.classes[int(np.argmin(thrifty.class_seconds))]
    assert thrifty.class_seconds.min() < thrifty.class_seconds.max()
    assert (thrifty.route(_clips())["system"] == cheaper).all()
    deferring = FeaturesRouter.from_run(run, "passthrough", defer_to="gate", margin=1.0)
    assert list(deferring.route(_clips())["system"]) == ["gate"] * 4
