"""``evaluate_run`` end to end on a tiny trained run (Ray tasks per fold)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serec.audio import write_wav
from serec.cli import main
from serec.evaluate import evaluate_run, format_headline
from serec.evaluate.ensemble import TwoStage
from serec.evaluate.metrics import calibrate_threshold
from serec.evaluate.report import deployment_phrase
from serec.evaluate.routing import SystemScores
from serec.evaluate.run import choose_margin, choose_router, json_safe, pool_mean_ovr
from serec.label.rule import ALL_FAILED
from serec.runs import LABELS, RunDir
from serec.train.features_router import train_boosted
from tests.evaluate.tinyrun import build_tiny_run, synth, tiny_config

pytestmark = pytest.mark.timeout(600)


def _read(run: RunDir, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(run.root) / "report" / name)


def _threshold_from_validation(predictions: pd.DataFrame, expert: list[str]) -> float:
    val = predictions[predictions["split"] == "validation"]
    p_expert = val[[f"p_expert_{c}" for c in expert]].to_numpy()
    return calibrate_threshold(val["truth"].to_numpy(dtype=object), val["p_majority"].to_numpy(),
                               p_expert, TwoStage("rnnoise", tuple(expert))).threshold


def _replace_test_set(run: RunDir, test_ids: set[str]) -> None:
    """New audio and new labels for every test clip (validation clips untouched)."""
    labels = run.read_pandas(LABELS)
    rng = np.random.default_rng(99)
    for row in labels[labels["clip_id"].isin(test_ids)].itertuples():
        write_wav(row.path, synth("noise" if row.label != ALL_FAILED else "speech", rng))
    labels.loc[labels["clip_id"].isin(test_ids), "label"] = ALL_FAILED
    shutil.rmtree(Path(run.root) / LABELS)
    run.append_part(LABELS, pa.Table.from_pandas(labels, preserve_index=False))


def _pool_best_single(run: RunDir) -> str:
    splits = run.read_pandas("splits.parquet")
    scores = run.read_pandas("scores").merge(splits, on="clip_id")
    pool = scores[~scores["is_test"] & scores["system"].isin(["rnnoise", "gate"])]
    return str(pool.groupby("system")["ovr"].mean().idxmax())


def test_evaluate_run_end_to_end(tmp_path, ray_session):
    run = build_tiny_run(tmp_path, ast_stages=("expert",))
    train_boosted(run)
    metrics = evaluate_run(run, tiny_config(), num_cpus=0.5, n_boot=100)
    report = Path(run.root) / "report"
    for name in ("metrics.json", "report.md", "threshold.json", "predictions.parquet",
                 "confusion_test.png", "confusion_gatekeeper.png", "regret_hist.png",
                 "quality_vs_compute.png", "confusion_full.png", "confusion_features.png",
                 "confusion_boosted.png", "cost_quality.png", "router_choice.json"):
        assert (report / name).is_file(), name
    assert (report / "regret_hist.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((report / "metrics.json").read_text())["headline"] == \
        json_safe(metrics["headline"])

    rows = {r["system"]: r for r in metrics["headline"]}
    best = metrics["routing"]["best_single"]
    at_default = ["router (ensemble, test, threshold 0.5)"] \
        if metrics["threshold"]["threshold"] != 0.5 else []
    deferral = metrics["comparisons"]["boosted"]["deferral"]  # only the deployable router's
    assert "deferral" not in metrics["comparisons"]["full"]
    assert deferral["default"] == best and 0.0 <= deferral["margin"] <= 1.0
    assert deferral["validation_oof_mean_ovr"] == max(
        deferral["validation_mean_ovr_by_margin"].values())
    deferring = ([f"boosted, deferring to {best} below margin {deferral['margin']:.2f} "
                  "(ensemble, test)"]
                 if deferral["margin"] > 0 and deferral["validation_share_left_default"] > 0
                 else [])
    assert list(rows) == ["oracle", "router (ensemble, test)", *at_default,
                          "full (ensemble, test)", "features (ensemble, test)", *deferring,
                          "boosted (ensemble, test)",
                          f"best single ({best})", "rnnoise", "gate", "passthrough", "random"]
    # the best single system is the training pool's, not the test set's
    assert best == _pool_best_single(run)
    assert metrics["routing"]["best_single_chosen_on"].startswith("training pool")
    # single systems lie on or under their hull; routers are measured against it
    cost = metrics["cost_quality"]
    assert all(r["gap_to_hull"] <= 1e-9 for r in rows.values()
               if r["system"] in ("rnnoise", "gate", "passthrough"))
    assert {c["router"] for c in cost["routers"]} == {
        "router (ensemble, test)", "full (ensemble, test)", "features (ensemble, test)",
        "boosted (ensemble, test)"}
    for curve in cost["routers"]:
        assert np.isfinite(curve["aiq"]) and np.isfinite(curve["hull_aiq"])
        for point in curve["points"]:
            assert point["gpu_s"] == 0.0 and point["cpu_s"] == pytest.approx(point["compute_s"])
    boosted = next(c for c in cost["routers"] if c["router"].startswith("boosted"))
    assert boosted["parameter"] == "cost_weight"
    spent = [p["compute_s"] for p in boosted["points"]]
    assert spent[-1] <= spent[0] + 1e-9 and boosted["points"][0]["cost_weight"] == 0.0
    choice = json.loads((report / "router_choice.json").read_text())
    assert choice == metrics["router_choice"]
    assert choice["best_router"] in ("two_stage", "boosted")
    assert set(choice["validation_macro_f1"]) == {"two_stage", "boosted"}
    picked_ovr = choice["validation_mean_ovr"]
    assert set(picked_ovr) == {"two_stage", "boosted"}
    assert picked_ovr[choice["best_router"]] == max(picked_ovr.values())
    single_ovr = choice["best_single_validation_mean_ovr"]
    assert picked_ovr["boosted"] == (deferral["validation_oof_mean_ovr"] if deferring
                                     else metrics["comparisons"]["boosted"]
                                     ["validation_oof_mean_ovr"])
    assert choice["router"] == ("best_single" if single_ovr - choice["tolerance"]
                                >= max(picked_ovr.values()) - 1e-9
                                else choice["best_router"])
    assert "## Cost and quality" in (report / "report.md").read_text()
    # metric noise: tie-aware scores beside the strict ones, the best single's shift-null gain
    ties = metrics["tie_aware"]
    assert ties["n_tied"] > 0 and ties["median_noise_floor"] == pytest.approx(0.0643, abs=1e-3)
    assert [r["router"] for r in ties["rows"]][0] == "router (ensemble, test)"
    assert {r["router"] for r in ties["rows"]} >= {"boosted (ensemble, test)"}
    for row in ties["rows"]:
        assert row["tie_aware_accuracy"] >= row["accuracy"]
        assert row["mean_regret"] == rows[row["router"]]["mean_regret"]
    assert ties["rows"][0]["macro_f1"] == pytest.approx(metrics["test"]["ensemble"]["macro_f1"])
    assert "tie_aware" in metrics["test"]["ensemble"]["gatekeeper"]
    assert metrics["routing"]["shift_null_gain_best_single"] == pytest.approx(0.02)
    markdown = (report / "report.md").read_text()
    assert "## Ties within the metric's noise" in markdown and "shift-null gain" in markdown
    assert f"deferral margin, chosen on the same picks: {deferral['margin']:.2f}" in markdown
    targets = metrics["targets"]  # the routing targets, from the same test results
    assert sum(targets["best_shares"].values()) == pytest.approx(1.0)
    picked = metrics["router_choice"]["best_router"]
    chosen = ("router (ensemble, test)" if picked == "two_stage"
              else deferring[0] if picked == "boosted" and deferring
              else f"{picked} (ensemble, test)")
    assert targets["router"] == chosen  # the router chosen on validation, which recommend deploys
    assert targets["router_minus_best_single"]["value"] == pytest.approx(
        rows[chosen]["mean_ovr"]
        - rows[f"best single ({metrics['routing']['best_single']})"]["mean_ovr"])
    assert "## Routing targets" in markdown and "### By acoustic condition" in markdown
    assert all(r["mean_ovr"] <= rows["oracle"]["mean_ovr"] + 1e-9 for r in rows.values()
               if r["system"] != "passthrough")
    assert rows["router (ensemble, test)"]["macro_f1"] == metrics["test"]["ensemble"]["macro_f1"]
    assert rows["passthrough"]["compute_s"] == 0.0
    assert rows["router (ensemble, test)"]["compute_s"] > 0
    text = format_headline(metrics)
    assert "router (ensemble, test)" in text and "threshold" in text
    assert format_headline(json.loads((report / "metrics.json").read_text())).split("\n")[:5] \
        == text.split("\n")[:5]

    # threshold: chosen on the out-of-fold validation rows only, stored for recommend
    predictions = _read(run, "predictions.parquet")
    splits = run.read_pandas("splits.parquet")
    test_ids = set(splits.loc[splits["is_test"], "clip_id"])
    assert set(predictions.loc[predictions["split"] == "test", "clip_id"]) == test_ids
    assert set(predictions.loc[predictions["split"] == "validation", "clip_id"]) == \
        set(splits["clip_id"]) - test_ids
    expert = [c for c in metrics["classes"] if c != "rnnoise"]
    threshold = json.loads((report / "threshold.json").read_text())["threshold"]
    assert threshold == metrics["threshold"]["threshold"]
    assert _threshold_from_validation(predictions, expert) == threshold
    assert metrics["threshold"]["macro_f1"] >= metrics["threshold"]["default_macro_f1"]
    for fold in metrics["folds"]:
        card = json.loads(Path(run.model_dir("gatekeeper", fold), "card.json").read_text())
        assert card["threshold"] == threshold

    # bottleneck on test agrees with the per-clip decisions
    test_rows = predictions[predictions["split"] == "test"]
    bottleneck = metrics["test"]["ensemble"]["bottleneck"]
    assert bottleneck["errors"] == int((test_rows["truth"] != test_rows["predicted"]).sum())
    assert sum(k["count"] for k in bottleneck["kinds"]) == bottleneck["errors"]

    # new test audio and labels change the test results but not the threshold
    _replace_test_set(run, test_ids)
    again = evaluate_run(run, tiny_config(), num_cpus=0.5, n_boot=100)
    assert again["threshold"] == metrics["threshold"]
    assert again["validation"]["per_fold"] == metrics["validation"]["per_fold"]
    new = _read(run, "predictions.parquet")
    pd.testing.assert_frame_equal(new[new["split"] == "validation"].reset_index(drop=True),
                                  predictions[predictions["split"] == "validation"]
                                  .reset_index(drop=True))
    assert (new.loc[new["split"] == "test", "truth"] == ALL_FAILED).all()
    assert again["test"]["ensemble"]["confusion"] != metrics["test"]["ensemble"]["confusion"]


@pytest.mark.slow
def test_models_of_one_run_tested_on_another_run(tmp_path, ray_session):
    run = build_tiny_run(tmp_path / "a", ast_stages=(), stages=("gatekeeper", "expert"))
    other = build_tiny_run(tmp_path / "b", counts={"rnnoise": 6, "gate": 3, ALL_FAILED: 2},
                           stages=(), seed=5)
    metrics = evaluate_run(run, tiny_config(), num_cpus=0.5, n_boot=50, test_run=other)
    assert metrics["n_test"] == 11 and metrics["test_run"] == other.root
    predictions = pd.read_parquet(Path(run.root) / "cross" / "run" / "report"
                                  / "predictions.parquet")
    test_ids = set(predictions.loc[predictions["split"] == "test", "clip_id"])
    assert test_ids == set(other.read_pandas(LABELS)["clip_id"])
    assert (predictions.loc[predictions["split"] == "test", "fold"] == -1).all()
    assert metrics["routing"]["best_single"] == _pool_best_single(run)
    assert metrics["report_path"].endswith("cross/run/report/report.md")
    assert "Cross-corpus" in Path(metrics["report_path"]).read_text()
    assert not (Path(other.root) / "report").exists()  # the other run is only read
    with pytest.raises(FileNotFoundError, match="label the test run"):
        evaluate_run(run, tiny_config(), num_cpus=0.5, test_run=RunDir.of(tmp_path / "none"))


def test_ovr_router_is_evaluated_like_the_classifier(tmp_path, ray_session):
    run = build_tiny_run(tmp_path, ast_stages=(), stages=("gatekeeper", "expert"))
    train_boosted(run, target="ovr")
    metrics = evaluate_run(run, tiny_config(), num_cpus=0.5, n_boot=50)
    boosted = metrics["comparisons"]["boosted"]
    test = metrics["test"]
    assert boosted["test"]["n"] == metrics["n_test"]
    # the all_failed test clips count, as errors of a router that only picks systems
    failed = next(c for c in boosted["test"]["per_class"] if c["class"] == ALL_FAILED)
    assert failed["support"] > 0 and failed["recall"] == 0.0
    assert np.isfinite(boosted["validation_oof_mean_ovr"]) and test["ensemble"]["n"] > 0
    assert boosted["deferral"]["default"] == _pool_best_single(run)
    rows = {r["system"] for r in metrics["headline"]}
    assert "boosted (ensemble, test)" in rows
    assert metrics["router_choice"]["router"] in ("two_stage", "boosted", "best_single")


def test_test_run_without_labels_is_a_one_line_error(tmp_path, capsys):
    run = build_tiny_run(tmp_path, ast_stages=(), stages=("gatekeeper", "expert"))
    code = main(["evaluate", "--run", run.root, "--test-run", str(tmp_path / "none")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label the test run first" in err


@pytest.mark.slow
def test_a_test_set_that_never_reaches_the_expert(tmp_path, ray_session):
    """The issue's crash: a small, lopsided test set where no clip is for the expert."""
    run = build_tiny_run(tmp_path, ast_stages=(), stages=("gatekeeper", "expert"))
    splits = run.read_pandas("splits.parquet")
    test_ids = set(splits.loc[splits["is_test"], "clip_id"])
    labels = run.read_pandas(LABELS)
    rng = np.random.default_rng(3)
    for row in labels[labels["clip_id"].isin(test_ids)].itertuples():
        write_wav(row.path, synth("speech", rng))
    labels.loc[labels["clip_id"].isin(test_ids), "label"] = "rnnoise"
    shutil.rmtree(Path(run.root) / LABELS)
    run.append_part(LABELS, pa.Table.from_pandas(labels, preserve_index=False))
    metrics = evaluate_run(run, tiny_config(), num_cpus=0.5, n_boot=50)
    expert = metrics["test"]["ensemble"]["expert"]
    assert expert["n"] == 0
    text = (Path(run.root) / "report" / "report.md").read_text()
    section = text[text.index("### Expert"):text.index("### Where the errors")]
    assert "No clips in this group." in section


def test_router_chosen_on_validation_mean_ovr_not_macro_f1():
    scores = pd.DataFrame({"clip_id": ["a", "a", "a", "b", "b", "b"],
                           "system": ["noisy", "x", "y"] * 2,
                           "ovr": [2.0, 3.0, 2.9, 2.0, 2.5, 3.5],
                           "seconds": [0.0, 1.0, 1.0] * 2, "dnsmos_seconds": [0.1] * 6})
    pool = SystemScores.from_scores(scores, ["a", "b"], ["x", "y"])
    assert pool_mean_ovr(pool, ["a", "b"], ["x", "y"]) == pytest.approx(3.25)
    assert pool_mean_ovr(pool, ["b", "zzz"], ["x", "x"]) == pytest.approx(2.5)  # unscored: out
    assert np.isnan(pool_mean_ovr(pool, [], []))
    # two-stage has the higher macro F1, boosted the higher quality: quality wins
    validation = {"out_of_fold": {"macro_f1": 0.4}, "out_of_fold_mean_ovr": 2.9,
                  "best_single_mean_ovr": 2.95}
    comparisons = {"boosted": {"validation_oof_macro_f1": 0.2, "validation_oof_mean_ovr": 3.0}}
    choice = choose_router(validation, comparisons)
    assert choice["router"] == choice["best_router"] == "boosted"
    assert choice["validation_macro_f1"] == {"two_stage": 0.4, "boosted": 0.2}
    assert choice["best_single_validation_mean_ovr"] == 2.95
    # a best single system that beats every router on validation is what recommend deploys
    validation["best_single_mean_ovr"] = 3.05
    choice = choose_router(validation, comparisons, "wpe_dfn3")
    assert (choice["router"], choice["system"], choice["best_router"]) == (
        "best_single", "wpe_dfn3", "boosted")
    assert deployment_phrase(choice, "**").startswith("the best single system **wpe_dfn3** on "
                                                      "every clip")
    assert choose_router(validation, comparisons)["router"] == "boosted"  # no best single known
    assert deployment_phrase(choose_router(validation, comparisons)) == "boosted"
    # cost-aware labels: a router within their delta of the best single is as good, and cheaper
    assert choose_router(validation, comparisons, "wpe_dfn3", 0.1)["router"] == "boosted"
    validation["best_single_mean_ovr"] = 2.95
    # without a scored pool, macro F1 decides
    validation["out_of_fold_mean_ovr"] = float("nan")
    comparisons["boosted"]["validation_oof_mean_ovr"] = float("nan")
    assert choose_router(validation, comparisons)["router"] == "two_stage"


def test_deferral_margin_chosen_out_of_fold_and_deployed():
    # x is the best single system; y wins clip c by a lot, clip d by a little, loses a and b
    scores = pd.DataFrame({"clip_id": np.repeat(["a", "b", "c", "d"], 3),
                           "system": ["noisy", "x", "y"] * 4,
                           "ovr": [2.0, 3.0, 2.5, 2.0, 3.0, 2.6, 2.0, 2.5, 3.5, 2.0, 3.0, 3.1],
                           "seconds": [0.0, 1.0, 1.0] * 4, "dnsmos_seconds": [0.1] * 12})
    pool = SystemScores.from_scores(scores, ["a", "b", "c", "d"], ["x", "y"])
    # the model leads with y by 0.1 on a, 0.3 on b (wrong), 0.8 on c and 0.2 on d (right)
    probs = np.array([[0.45, 0.55], [0.35, 0.65], [0.1, 0.9], [0.4, 0.6]])
    deferral = choose_margin(pool, ["a", "b", "c", "d"], probs, ["x", "y"], "x", "noisy")
    # margins 0.3 up to 0.75 keep only c on y (mean 3.125); the largest of them is chosen
    assert deferral["margin"] == pytest.approx(0.75)
    assert deferral["validation_oof_mean_ovr"] == pytest.approx(3.125)
    assert deferral["validation_share_left_default"] == pytest.approx(0.25)
    assert deferral["validation_mean_ovr_by_margin"]["0.00"] == pytest.approx(
        pool_mean_ovr(pool, ["a", "b", "c", "d"], ["y"] * 4))
    validation = {"out_of_fold": {"macro_f1": 0.4}, "out_of_fold_mean_ovr": 2.9,
                  "best_single_mean_ovr": 2.875}
    comparisons = {"boosted": {"validation_oof_macro_f1": 0.5, "validation_oof_mean_ovr": 2.925,
                               "deferral": deferral}}
    choice = choose_router(validation, comparisons, "x")
    assert (choice["router"], choice["defer_to"], choice["margin"]) == ("boosted", "x", 0.75)
    assert choice["validation_mean_ovr"]["boosted"] == pytest.approx(3.125)
    assert "deferring to x unless" in deployment_phrase(choice)
    # a router that only matches the best single on validation is not worth its cost
    never = choose_margin(pool, ["a", "b"], probs[:2], ["x", "y"], "x", "noisy")
    assert never["margin"] == 1.0 and never["validation_share_left_default"] == 0.0
    comparisons["boosted"]["deferral"] = never
    validation["best_single_mean_ovr"] = never["validation_oof_mean_ovr"]
    assert choose_router(validation, comparisons, "x")["router"] == "best_single"
