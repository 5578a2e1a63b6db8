"""``serec evaluate``: folds in parallel (Ray tasks), metrics, routing value, report.

The gatekeeper threshold is chosen on the out-of-fold validation predictions only (every fold's
models on that fold's validation clips) and then applied unchanged to the held-out test set. It
is written to ``report/threshold.json`` and into every gatekeeper card, where ``recommend``
finds it. The best single enhancer is likewise chosen on the training pool's scores, and the
router ``recommend`` deploys (``report/router_choice.json``) on the mean OVR its out-of-fold
validation picks reach on the training pool.
Quality against compute (single systems, their best fixed mixture, router sweeps, AIQ) is in
:mod:`serec.evaluate.frontier`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.metrics import f1_score

from serec.config import SerecConfig
from serec.enhancers.registry import parse_enhancer_specs
from serec.evaluate import plots
from serec.evaluate.analysis import (
    PipelineView,
    flat_report,
    margin_accuracy,
    pipeline_report,
    with_fallback,
)
from serec.evaluate.ensemble import (
    BEST_SINGLE,
    BOOSTED,
    EXPERT,
    FEATURES_STAGE,
    FULL,
    GATEKEEPER,
    ROUTER_CHOICE_FILE,
    THRESHOLD_FILE,
    TWO_STAGE,
    StagePrediction,
    TwoStage,
    align_probs,
    trained_folds,
)
from serec.evaluate.folds import FoldResult, run_fold_tasks, stack_folds
from serec.evaluate.frontier import (
    MARGIN_GRID,
    Frontier,
    SystemCosts,
    cost_weighted_choice,
    deferring_choice,
    router_curve,
    single_points,
    weight_grid,
)
from serec.evaluate.metrics import (
    DEFAULT_THRESHOLD,
    THRESHOLD_GRID,
    Calibration,
    calibrate_threshold,
    class_list,
    macro_f1,
    mean_std,
    tie_aware,
)
from serec.evaluate.report import render_report
from serec.evaluate.routing import (
    RouterChoice,
    SystemScores,
    breakdown,
    headline_rows,
    regret,
    snr_band,
)
from serec.evaluate.targets import target_figures
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS
from serec.features.stage import noisy_scores
from serec.label.rule import accepted_labels
from serec.label.stages import NOISY
from serec.models.boosted import cost_scores
from serec.models.card import CARD_FILE, KIND_AST, ModelCard, ovr_temperature, read_card
from serec.ray_utils import init_ray
from serec.runs import FEATURES, LABELS, MANIFEST, REPORT, SCORES, RunDir
from serec.train.splits import labeled_splits

PASSTHROUGH_KIND = "passthrough"
PREDICTIONS_FILE = f"{REPORT}/predictions.parquet"
CROSS_DIR = "cross"  # <run>/cross/<test run>/report/: models of <run> on another run's clips
ROUTER = "router (ensemble, test)"
COMPARED_STAGES = (FULL, FEATURES_STAGE, BOOSTED)
TIE_EPS = 1e-9  # mean OVRs closer than this are equal (summation order)
RECOMMENDABLE_STAGES = (BOOSTED,)  # one-stage routers that ``recommend`` can deploy


# -- inputs ----------------------------------------------------------------------------------
def feature_table(run: RunDir) -> pd.DataFrame | None:
    """CE/KL features plus the noisy clip's DNSMOS (``noisy_*``) per clip, where available."""
    noisy = noisy_scores(run)
    if not run.has_table(FEATURES):
        return noisy
    table = run.read_pandas(FEATURES)
    table = table.drop(columns=[c for c in table if c.startswith("noisy_")])
    return table.merge(noisy, on="clip_id", how="left") if noisy is not None else table


def evaluation_frame(run: RunDir, all_test: bool = False) -> pd.DataFrame:
    """Labels + split + manifest window + tabular features, one row per labeled clip.

    ``all_test``: every labeled clip is a test clip (fold -1), no split needed; for a run
    whose clips test models trained on another run.
    """
    if all_test:
        if not run.has_table(LABELS):
            raise FileNotFoundError(f"{run.path(LABELS)} has no parts; label the test run first")
        frame = run.read_pandas(LABELS).sort_values("clip_id", kind="stable")
        frame = frame.drop(columns=[c for c in ("fold", "is_test") if c in frame])
        frame = frame.reset_index(drop=True).assign(fold=-1, is_test=True)
    else:
        frame = labeled_splits(run)
    if run.exists(MANIFEST):
        manifest = run.read_pandas(MANIFEST)
        windows = [c for c in ("offset_s", "duration_s") if c in manifest]
        frame = frame.drop(columns=[c for c in windows if c in frame]).merge(
            manifest[["clip_id", *windows]], on="clip_id", how="left")
    for column in ("offset_s", "duration_s"):
        if column not in frame:
            frame[column] = np.nan
    features = feature_table(run)
    if features is not None:
        frame = frame.drop(columns=[c for c in features if c != "clip_id" and c in frame])
        frame = frame.merge(features, on="clip_id", how="left")
    frame["clip_id"] = frame["clip_id"].astype(str)
    frame["label"] = frame["label"].astype(str)
    return frame  # in clip_id order: labeled_splits sorts, left merges keep the order


def tied_sets(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """Each clip's accepted labels (its tied set when its label is in it; the label alone for
    label tables from before ``tied_systems``)."""
    tied = frame["tied_systems"] if "tied_systems" in frame else [None] * len(frame)
    return [accepted_labels(str(label), t) for label, t in zip(frame["label"], tied, strict=True)]


def passthrough_systems(config: SerecConfig) -> set[str]:
    """System names whose output is the input (the ``passthrough`` kind)."""
    specs = parse_enhancer_specs(config.enhancers)
    return {PASSTHROUGH_KIND} | {name for name, spec in specs.items()
                                 if spec.kind == PASSTHROUGH_KIND}


@dataclass
class StageCards:
    """Cards of one stage by fold, and what the router spends to feed them."""

    cards: dict[int, ModelCard]

    def uses(self, kind: str) -> bool:
        """Whether any fold needs the ``spectrogram``, ``cekl`` or ``dnsmos`` input."""
        features = {f for c in self.cards.values() for f in c.features}
        if kind == "spectrogram":
            return any(c.kind == KIND_AST for c in self.cards.values())
        if kind == "cekl":  # CE/KL and routing descriptors, computed together
            return bool(features & set(AUDIO_FEATURE_COLUMNS))
        if kind == "dnsmos":
            return any(f.startswith("noisy_") for f in features)
        raise ValueError(f"unknown router input '{kind}'")


def stage_cards(run: RunDir, stage: str) -> StageCards:
    return StageCards({k: read_card(run.model_dir(stage, k)) for k in trained_folds(run, stage)})


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# -- threshold ---------------------------------------------------------------------------------
def write_threshold(run: RunDir, calibration: Calibration, folds: Sequence[int]) -> None:
    """``report/threshold.json`` plus the ``threshold`` field of every gatekeeper card."""
    run.write_json(THRESHOLD_FILE, {**calibration.to_dict(), "folds": list(folds)})
    for fold in folds:
        folder = RunDir.of(run.model_dir(GATEKEEPER, fold))
        card = read_card(folder.root)
        card.threshold = calibration.threshold
        folder.write_bytes(CARD_FILE, json.dumps(card.to_dict(), indent=2).encode())


def predictions_table(oof: PipelineView, test: PipelineView, two_stage: TwoStage,
                      threshold: float, fold_of: dict[str, int],
                      test_fold_of: dict[str, int] | None = None) -> pd.DataFrame:
    """Per clip: split, fold, truth, gatekeeper and expert probabilities, the decision.

    Validation rows are out-of-fold (the clip's own fold's models); test rows are the fold
    ensemble. Decisions use the calibrated threshold. ``test_fold_of``: the test clips' folds
    when they come from another run (whose clip ids may repeat this run's).
    """
    parts = []
    for split, view, folds in (("validation", oof, fold_of),
                               ("test", test, test_fold_of or fold_of)):
        part = pd.DataFrame({"clip_id": view.clip_ids, "split": split,
                             "fold": [int(folds[c]) for c in view.clip_ids],
                             "truth": view.truth.astype(str),
                             "p_majority": view.p_majority})
        for j, name in enumerate(two_stage.expert_classes):
            part[f"p_expert_{name}"] = view.p_expert[:, j]
        part["routed_to_expert"] = two_stage.routed(view.p_majority, threshold)
        part["predicted"] = view.decide(two_stage, threshold).astype(str)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# -- per-stage helpers ------------------------------------------------------------------------
def _pipeline_view(clip_ids: list[str], truth: np.ndarray, gk_probs: np.ndarray,
                   gk_classes: list[str], ex_probs: np.ndarray, ex_classes: list[str],
                   two_stage: TwoStage) -> PipelineView:
    return PipelineView(clip_ids, truth, gk_probs[:, gk_classes.index(two_stage.majority)],
                        align_probs(ex_probs, ex_classes, list(two_stage.expert_classes)))


def router_seconds(stages: Sequence[tuple[StageCards, np.ndarray, np.ndarray]],
                    inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Router compute per clip, as ``recommend`` spends it.

    ``stages`` are ``(cards, model seconds per clip, clips it runs on)`` in the order they
    run (the gatekeeper on every clip, the expert on routed clips). An input (``spectrogram``,
    ``cekl``, ``dnsmos`` seconds per clip) is paid once per clip, by the first stage that runs
    on the clip and needs it.
    """
    total = np.zeros(len(next(iter(inputs.values()))))
    paid = np.zeros((len(inputs), len(total)), dtype=bool)
    for cards, model_s, runs_on in stages:
        runs_on = np.asarray(runs_on, bool)
        total += np.where(runs_on, model_s, 0.0)
        for j, (kind, seconds) in enumerate(inputs.items()):
            if cards.uses(kind):
                due = runs_on & ~paid[j]
                total[due] += seconds[due]
                paid[j] |= due
    return total


def _clip_positions(order: Sequence[str], clip_ids: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(order)}
    return np.array([index[c] for c in clip_ids], dtype=int)


# -- evaluate -----------------------------------------------------------------------------------
def evaluate_run(run: RunDir, config: SerecConfig, address: str | None = None,
                 num_cpus: float = 1.0, num_gpus: float = 0.0,
                 n_boot: int = 1000, test_run: RunDir | None = None) -> dict[str, Any]:
    """Evaluate the trained folds; writes ``report/`` and returns the metrics.

    The returned dict is what ``report/metrics.json`` holds, plus ``report_path``; its
    ``headline`` is a list of rows (system, mean_ovr, gap_closed, mean_regret, p90_regret,
    share_regret_gt_0_2, compute_s, macro_f1, gap_to_hull). With ``test_run`` the models of
    ``run`` are tested on every labeled clip of that other run (cross-corpus); the threshold
    and the best single system still come from ``run``'s own pool, and the report goes to
    ``run``'s ``cross/<test run name>/report/``.
    """
    frame = evaluation_frame(run)
    scored_run = test_run or run
    test = (evaluation_frame(test_run, all_test=True) if test_run is not None
            else frame[frame["is_test"]].reset_index(drop=True))
    gk_cards, ex_cards = stage_cards(run, GATEKEEPER), stage_cards(run, EXPERT)
    folds = sorted(set(gk_cards.cards) & set(ex_cards.cards))
    if not folds:
        raise FileNotFoundError("evaluate needs gatekeeper and expert models of the same folds; "
                                f"found gatekeeper folds {sorted(gk_cards.cards)}, expert folds "
                                f"{sorted(ex_cards.cards)}")
    extra = {s: stage_cards(run, s) for s in COMPARED_STAGES}
    extra = {s: c for s, c in extra.items() if set(c.cards) & set(folds)}
    pool = frame[~frame["is_test"] & frame["fold"].isin(folds)].reset_index(drop=True)
    if test.empty:
        raise ValueError(f"{scored_run.root} has no test clips; evaluate needs a held-out "
                         "test set (or labeled clips in --test-run)")

    init_ray(address)
    stages_by_fold = {k: [GATEKEEPER, EXPERT, *[s for s, c in extra.items() if k in c.cards]]
                      for k in folds}
    results, cekl_s = run_fold_tasks(run, stages_by_fold, pool, test, num_cpus, num_gpus)
    results = sorted(results, key=lambda r: r.fold)

    expert_classes = list(dict.fromkeys(c for k in folds for c in ex_cards.cards[k].classes))
    two_stage = TwoStage.of([gk_cards.cards[k] for k in folds], expert_classes)
    truth_of = dict(zip(frame["clip_id"], frame["label"], strict=True))

    validation, oof_view, calibration = _validation(results, truth_of, two_stage)
    threshold = calibration.threshold
    write_threshold(run, calibration, folds)

    test_ids = test["clip_id"].tolist()
    test_truth = test["label"].to_numpy(dtype=object)
    gk_test = stack_folds([r.test[GATEKEEPER] for r in results])
    ex_test = stack_folds([r.test[EXPERT] for r in results])
    ens_view = _pipeline_view(test_ids, test_truth, gk_test.mean, gk_test.classes, ex_test.mean,
                              ex_test.classes, two_stage)
    accepted = tied_sets(test)
    test_metrics = _test_metrics(results, gk_test, ex_test, ens_view, two_stage, threshold,
                                 n_boot, accepted)

    passthrough = passthrough_systems(config)
    pool_table = SystemScores.from_scores(
        run.read_pandas(SCORES, dedup_keys=["clip_id", "system"]), pool["clip_id"],
        config.candidates, passthrough, extra=list(config.enhancers))
    table = SystemScores.from_scores(
        scored_run.read_pandas(SCORES, dedup_keys=["clip_id", "system"]), test_ids,
        config.candidates, passthrough, extra=list(config.enhancers))
    table.fixed_best = pool_table.best_single() if len(pool_table.clip_ids) else None
    fallback = config.recommend.fallback
    validation["out_of_fold_mean_ovr"] = pool_mean_ovr(
        pool_table, oof_view.clip_ids, with_fallback(oof_view.decide(two_stage, threshold),
                                                     fallback))
    validation["best_single_mean_ovr"] = (float(pool_table.ovr[table.fixed_best].mean())
                                          if table.fixed_best else float("nan"))
    pos = _clip_positions(test_ids, table.clip_ids)
    spectrogram_s = np.mean([r.test_spectrogram_s for r in results], axis=0)
    dnsmos_s = table.dnsmos_seconds[NOISY].to_numpy()

    inputs = {"spectrogram": spectrogram_s[pos], "cekl": cekl_s[pos], "dnsmos": dnsmos_s}
    pipeline = _PipelineParts(ens_view, two_stage, pos, fallback, (gk_cards, gk_test),
                              (ex_cards, ex_test), inputs)
    routers = [pipeline.router(ROUTER, threshold, test_metrics["ensemble"]["macro_f1"])]
    if threshold != DEFAULT_THRESHOLD:
        routers.append(pipeline.router(
            f"{ROUTER[:-1]}, threshold {DEFAULT_THRESHOLD})", DEFAULT_THRESHOLD,
            test_metrics["ensemble_default_threshold"]["macro_f1"]))

    costs = SystemCosts.from_config(config.enhancers, sorted(passthrough),
                                    "gpu" if num_gpus else "cpu")
    comparisons, sweeps = {}, {}
    # router_choice's names -> headline rows and cost-quality curves
    router_names, curve_names = {TWO_STAGE: ROUTER}, {TWO_STAGE: ROUTER}
    for stage, cards in extra.items():
        comparison, choices, sweep = _comparison(
            stage, cards, results, truth_of, test_truth, pos, fallback, inputs, n_boot,
            pool_table, accepted, table.fixed_best if stage in RECOMMENDABLE_STAGES else None)
        comparisons[stage] = comparison
        sweeps[choices[-1].name] = sweep
        router_names[stage], curve_names[stage] = choices[0].name, choices[-1].name
        routers.extend(choices)

    headline = headline_rows(table, routers)
    singles = single_points(table, costs)
    hull = Frontier.of([p["compute_s"] for p in singles], [p["mean_ovr"] for p in singles])
    for row in headline:
        row["gap_to_hull"] = float(row["mean_ovr"] - hull.quality_at(row["compute_s"]))
    curves = [pipeline.threshold_curve(table, costs, hull)]
    curves += [router_curve(name, "cost_weight", *sweep, table, costs, hull)
               for name, sweep in sweeps.items()]
    routing = _routing(table, test.iloc[pos], ens_view.decide(two_stage, threshold)[pos],
                       routers[0], headline)
    routing["best_single_chosen_on"] = (f"training pool ({len(pool_table.clip_ids)} clips)"
                                        if table.fixed_best else "test clips (no scored pool)")
    router_choice = choose_router(validation, comparisons, table.fixed_best,
                                  config.label.cheapest_within or 0.0)
    chosen = router_choice["best_router"]
    metrics: dict[str, Any] = {
        "run": run.root, "test_run": test_run.root if test_run is not None else None,
        "folds": folds, "majority": two_stage.majority,
        "classes": two_stage.classes, "candidates": config.candidates, "fallback": fallback,
        "n_validation": int(len(pool)), "n_test": int(len(test)),
        "threshold": {**calibration.to_dict(), "used_on_test": threshold},
        "validation": validation, "test": test_metrics, "comparisons": comparisons,
        "routing": routing, "headline": headline,
        "tie_aware": tie_summary(test, test_metrics, comparisons, headline),
        "cost_quality": {"singles": singles, "hull": hull.to_dict(), "routers": curves,
                         "router_device": costs.router_device},
        "router_choice": router_choice,
        "targets": target_figures(
            frame, routing, next(r for r in headline if r["system"] == router_names[chosen]),
            singles, next((c for c in curves if c["router"] == curve_names[chosen]), None),
            next(r.systems for r in routers if r.name == router_names[chosen])),
    }
    predictions = predictions_table(oof_view, ens_view, two_stage, threshold,
                                    dict(zip(frame["clip_id"], frame["fold"], strict=True)),
                                    dict(zip(test["clip_id"], test["fold"], strict=True)))
    out = run if test_run is None else RunDir.of(run.path(CROSS_DIR, run_name(test_run)))
    _write_report(out, metrics, table, routers[0], predictions)
    if test_run is None:
        run.write_json(ROUTER_CHOICE_FILE, metrics["router_choice"])
    metrics["report_path"] = out.path(REPORT, "report.md")
    return metrics


def run_name(run: RunDir) -> str:
    """The last part of a run's root (``runs/b`` -> ``b``)."""
    return run.root.rstrip("/").rsplit("/", 1)[-1]


def pool_mean_ovr(pool: SystemScores, clip_ids: Sequence[str], systems: Sequence[str]) -> float:
    """Mean OVR on the training pool of running ``systems[i]`` on ``clip_ids[i]`` (clips or
    systems without scores are left out; NaN when none is left)."""
    picks = dict(zip(clip_ids, systems, strict=True))
    ovr, _ = pool.lookup([picks.get(c, "") for c in pool.clip_ids])
    return float(np.nanmean(ovr)) if np.isfinite(ovr).any() else float("nan")


def defers(deferral: dict[str, Any] | None) -> bool:
    """Whether a router with this deferral (:func:`choose_margin`) differs from both the most
    probable label (margin 0) and the best single system (it left it on no validation
    clip)."""
    return bool(deferral) and deferral["margin"] > 0 \
        and deferral["validation_share_left_default"] > 0


def deployable_mean_ovr(comparison: dict[str, Any]) -> float:
    """A one-stage router's out-of-fold mean OVR on the training pool as ``recommend`` would
    run it: with its deferral margin where that is a router of its own (:func:`defers`)."""
    deferral = comparison.get("deferral")
    return float(deferral["validation_oof_mean_ovr"] if defers(deferral)
                 else comparison["validation_oof_mean_ovr"])


def choose_margin(pool: SystemScores, clip_ids: Sequence[str], probs: np.ndarray,
                  classes: Sequence[str], default: str, fallback: str) -> dict[str, Any]:
    """The deferral margin (:func:`serec.evaluate.frontier.deferring_choice`) whose
    out-of-fold picks reach the highest mean OVR on the training pool; on a tie the larger
    margin (fewer clips leave ``default``)."""
    systems = with_fallback(np.asarray(classes, dtype=object), fallback)
    index = list(classes).index(default)
    picks = {float(m): deferring_choice(probs, index, m) for m in MARGIN_GRID}
    means = {m: pool_mean_ovr(pool, clip_ids, systems[p]) for m, p in picks.items()}
    finite = [v for v in means.values() if np.isfinite(v)]
    margin = (max(m for m, v in means.items() if np.isfinite(v) and v >= max(finite) - TIE_EPS)
              if finite else float(MARGIN_GRID[-1]))
    return {"default": default, "margin": margin, "validation_oof_mean_ovr": means[margin],
            "validation_share_left_default": float(np.mean(picks[margin] != index))
            if len(probs) else float("nan"),
            "validation_mean_ovr_by_margin": {f"{m:.2f}": v for m, v in means.items()},
            "chosen_on": "mean OVR of out-of-fold validation picks on the training pool"}


def choose_router(validation: dict[str, Any], comparisons: dict[str, Any],
                  best_single: str | None = None, tolerance: float = 0.0) -> dict[str, Any]:
    """What ``recommend`` deploys, chosen on validation only (the test set plays no part).

    ``best_router``: the router whose out-of-fold validation picks reach the highest mean OVR
    on the training pool (two-stage pipeline at its calibrated threshold, or a one-stage
    model); macro F1 is reported beside it. ``router``: that router, or ``best_single`` (with
    ``system``) when the router does not beat the best single system's mean OVR on the same pool
    minus ``tolerance`` (the cost-aware objective's δ: within it, the router's cheaper picks are
    as good), since no router then pays for itself. A one-stage router counts with its deferral
    margin (:func:`choose_margin`), and ``router_choice`` then carries ``defer_to`` and
    ``margin``.

    Mean OVR, not macro F1: a router is worth its quality, and macro F1 weighs a rare class's
    errors as much as the majority's, whatever they cost in OVR.
    """
    stages = [s for s in comparisons if s in RECOMMENDABLE_STAGES]
    mean_ovr = {TWO_STAGE: float(validation["out_of_fold_mean_ovr"]),
                **{s: deployable_mean_ovr(comparisons[s]) for s in stages}}
    macro = {TWO_STAGE: float(validation["out_of_fold"]["macro_f1"]),
             **{s: float(comparisons[s]["validation_oof_macro_f1"]) for s in stages}}
    finite = {k: v for k, v in mean_ovr.items() if np.isfinite(v)}
    if not finite:  # no scored pool: fall back to macro F1
        finite = {k: v for k, v in macro.items() if np.isfinite(v)}
    chosen = max(finite, key=finite.get) if finite else TWO_STAGE
    single_ovr = float(validation.get("best_single_mean_ovr", float("nan")))
    deployed = (BEST_SINGLE if best_single is not None and np.isfinite(single_ovr)
                and np.isfinite(mean_ovr[chosen])
                and single_ovr - tolerance >= mean_ovr[chosen] - TIE_EPS else chosen)
    deferral = comparisons.get(deployed, {}).get("deferral")
    return {"router": deployed, "best_router": chosen,
            **({"system": best_single} if deployed == BEST_SINGLE else {}),
            **({"defer_to": deferral["default"], "margin": deferral["margin"]}
               if defers(deferral) else {}),
            "validation_mean_ovr": mean_ovr, "validation_macro_f1": macro,
            "best_single": best_single, "best_single_validation_mean_ovr": single_ovr,
            "tolerance": tolerance,
            "chosen_on": "mean OVR of out-of-fold validation picks on the training pool"}


@dataclass
class _PipelineParts:
    """The fold-ensemble two-stage pipeline on the scored test clips (``pos``)."""

    view: PipelineView
    two_stage: TwoStage
    pos: np.ndarray
    fallback: str
    gatekeeper: tuple[StageCards, StagePrediction]
    expert: tuple[StageCards, StagePrediction]
    inputs: dict[str, np.ndarray]

    def router(self, name: str, threshold: float, f1: float | None = None) -> RouterChoice:
        """The pipeline's choices and router seconds at ``threshold``."""
        pos = self.pos
        routed = self.two_stage.routed(self.view.p_majority, threshold)[pos]
        seconds = router_seconds(
            [(self.gatekeeper[0], self.gatekeeper[1].seconds.sum(axis=0)[pos],
              np.ones(len(pos), bool)),
             (self.expert[0], self.expert[1].seconds.sum(axis=0)[pos], routed)], self.inputs)
        decided = self.view.decide(self.two_stage, threshold)[pos]
        return RouterChoice(name, with_fallback(decided, self.fallback), seconds, f1)

    def threshold_curve(self, table: SystemScores, costs: SystemCosts,
                        hull: Frontier) -> dict[str, Any]:
        """Operating points over the gatekeeper threshold grid (more clips reach the expert
        as the threshold rises)."""
        choices = [self.router(ROUTER, float(t)) for t in THRESHOLD_GRID]
        return router_curve(ROUTER, "threshold", THRESHOLD_GRID, [c.systems for c in choices],
                            [c.router_seconds for c in choices], table, costs, hull)


def _write_report(run: RunDir, metrics: dict[str, Any], table: SystemScores,
                  router: RouterChoice, predictions: pd.DataFrame) -> None:
    """Figures, ``predictions.parquet``, ``metrics.json`` and ``report.md`` under report/."""
    ensemble = metrics["test"]["ensemble"]
    threshold = metrics["threshold"]["used_on_test"]
    figures = {
        "confusion_test.png": plots.confusion_png(
            ensemble["confusion"], ensemble["classes"],
            f"router (ensemble) on test, threshold {threshold:.2f}"),
        "confusion_gatekeeper.png": plots.confusion_png(
            ensemble["gatekeeper"]["confusion"], ensemble["gatekeeper"]["classes"],
            "gatekeeper on test"),
        "regret_hist.png": plots.regret_png(regret(table, router.systems)),
        "quality_vs_compute.png": plots.quality_compute_png(metrics["headline"]),
        "cost_quality.png": plots.cost_quality_png(
            metrics["cost_quality"]["singles"], metrics["cost_quality"]["hull"],
            metrics["cost_quality"]["routers"]),
    }
    for stage, comparison in metrics["comparisons"].items():
        figures[f"confusion_{stage}.png"] = plots.confusion_png(
            comparison["test"]["confusion"], comparison["test"]["classes"],
            f"{stage} (ensemble) on test")
    for name, data in figures.items():
        run.write_bytes(f"{REPORT}/{name}", data)
    run.write_table(PREDICTIONS_FILE, pa.Table.from_pandas(predictions, preserve_index=False))
    metrics["figures"] = sorted(figures)
    run.write_json(f"{REPORT}/metrics.json", json_safe(metrics))
    run.write_bytes(f"{REPORT}/report.md", render_report(metrics).encode())


def _validation(results: list[FoldResult], truth_of: dict[str, str],
                two_stage: TwoStage) -> tuple[dict[str, Any], PipelineView, Calibration]:
    """Out-of-fold predictions: threshold calibration and per-fold validation macro F1."""
    views = []
    for r in results:
        truth = np.array([truth_of[c] for c in r.val_clip_ids], dtype=object)
        views.append(_pipeline_view(r.val_clip_ids, truth, r.val[GATEKEEPER].probs[0],
                                    r.val[GATEKEEPER].classes, r.val[EXPERT].probs[0],
                                    r.val[EXPERT].classes, two_stage))
    oof = PipelineView(
        [c for v in views for c in v.clip_ids], np.concatenate([v.truth for v in views]),
        np.concatenate([v.p_majority for v in views]),
        np.concatenate([v.p_expert for v in views]))
    calibration = calibrate_threshold(oof.truth, oof.p_majority, oof.p_expert, two_stage)
    per_fold = []
    for r, view in zip(results, views, strict=True):
        classes = class_list(two_stage.classes, view.truth)
        per_fold.append({
            "fold": r.fold, "n": len(view.truth),
            "macro_f1_default": macro_f1(view.truth, view.decide(two_stage, DEFAULT_THRESHOLD),
                                         classes),
            "macro_f1_calibrated": macro_f1(view.truth,
                                            view.decide(two_stage, calibration.threshold),
                                            classes)})
    validation = {
        "per_fold": per_fold,
        "macro_f1_default": mean_std([f["macro_f1_default"] for f in per_fold]),
        "macro_f1_calibrated": mean_std([f["macro_f1_calibrated"] for f in per_fold]),
        "out_of_fold": pipeline_report(oof, two_stage, calibration.threshold),
    }
    return validation, oof, calibration


def _test_metrics(results: list[FoldResult], gk: StagePrediction, ex: StagePrediction,
                  ens_view: PipelineView, two_stage: TwoStage, threshold: float,
                  n_boot: int, accepted: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    per_fold = []
    for i, r in enumerate(results):
        view = _pipeline_view(ens_view.clip_ids, ens_view.truth, gk.probs[i], gk.classes,
                              ex.probs[i], ex.classes, two_stage)
        classes = class_list(two_stage.classes, view.truth)
        per_fold.append({
            "fold": r.fold,
            "macro_f1_default": macro_f1(view.truth, view.decide(two_stage, DEFAULT_THRESHOLD),
                                         classes),
            "macro_f1_calibrated": macro_f1(view.truth, view.decide(two_stage, threshold),
                                            classes)})
    ensemble = pipeline_report(ens_view, two_stage, threshold, with_ci=True, n_boot=n_boot,
                               accepted=accepted)
    default = pipeline_report(ens_view, two_stage, DEFAULT_THRESHOLD, with_ci=True,
                              n_boot=n_boot, accepted=accepted)
    return {"per_fold": per_fold,
            "fold_macro_f1_default": mean_std([f["macro_f1_default"] for f in per_fold]),
            "fold_macro_f1_calibrated": mean_std([f["macro_f1_calibrated"] for f in per_fold]),
            "ensemble": ensemble,
            "ensemble_default_threshold": {k: default[k] for k in (
                "macro_f1", "macro_f1_ci95", "accuracy", "per_class", "confusion", "classes",
                "bottleneck", "threshold", "tie_aware") if k in default}}


def _comparison(stage: str, cards: StageCards, results: list[FoldResult],
                truth_of: dict[str, str], test_truth: np.ndarray, pos: np.ndarray,
                fallback: str, inputs: dict[str, np.ndarray], n_boot: int,
                pool: SystemScores, accepted: list[tuple[str, ...]] | None = None,
                best_single: str | None = None,
                ) -> tuple[dict[str, Any], list[RouterChoice], tuple[Any, ...]]:
    """A one-stage model (``full``, ``features``, ``boosted``): validation per fold and out of
    fold (macro F1, and the mean OVR of its picks on the training ``pool``), the test ensemble,
    and its cost-weight sweep ``(weights, choices, router seconds)`` with class costs = the
    mean seconds of each class's system on the training pool.

    Routers on the test set: the most probable class (last), preceded, when the margin chosen
    out of fold (:func:`choose_margin`) is above 0 and still leaves ``best_single`` on some
    validation clips, by the router that defers to ``best_single`` below that margin
    (``comparison['deferral']``)."""
    with_stage = [r for r in results if stage in r.val]
    per_fold, oof_ids, oof_truth, oof_pred, oof_probs = [], [], [], [], []
    for r in with_stage:
        pred = r.val[stage]
        truth = np.array([truth_of[c] for c in r.val_clip_ids], dtype=object)
        labels = np.asarray(pred.classes, dtype=object)[pred.probs[0].argmax(axis=1)]
        per_fold.append({"fold": r.fold, "n": len(truth),
                         "macro_f1": macro_f1(truth, labels, class_list(pred.classes, truth))})
        oof_ids += list(r.val_clip_ids)
        oof_truth.append(truth)
        oof_pred.append(labels)
        oof_probs.append(pred.probs[0])
    oof_truth_all = np.concatenate(oof_truth) if oof_truth else np.zeros(0, dtype=object)
    oof_pred_all = np.concatenate(oof_pred) if oof_pred else np.zeros(0, dtype=object)
    oof_f1 = (float(f1_score(oof_truth_all, oof_pred_all, average="macro", zero_division=0))
              if len(oof_truth_all) else float("nan"))
    test_pred = stack_folds([r.test[stage] for r in with_stage])
    labels = np.asarray(test_pred.classes, dtype=object)[test_pred.mean.argmax(axis=1)]
    report = flat_report(test_truth, labels, class_list(test_pred.classes, test_truth),
                         with_ci=True, n_boot=n_boot)
    if accepted is not None:
        report["tie_aware"] = tie_aware(test_truth, labels, accepted)
    model_s = test_pred.seconds.sum(axis=0)[pos]
    name = f"{stage} (ensemble, test)"
    seconds = router_seconds([(cards, model_s, np.ones(len(pos), bool))], inputs)
    choice = RouterChoice(name, with_fallback(labels[pos], fallback), seconds, report["macro_f1"])
    class_systems = with_fallback(np.asarray(test_pred.classes, dtype=object), fallback)
    system_seconds = pool.mean_seconds()
    class_costs = np.array([system_seconds.get(str(s), 0.0) for s in class_systems])
    weights = weight_grid(class_costs)
    scores = cost_scores(test_pred.mean[pos], ovr_temperature(cards.cards.values()))
    choices = [class_systems[cost_weighted_choice(scores, class_costs, w)] for w in weights]
    comparison = {"folds": [r.fold for r in with_stage], "validation_per_fold": per_fold,
                  "validation_macro_f1": mean_std([f["macro_f1"] for f in per_fold]),
                  "validation_oof_macro_f1": oof_f1,
                  "validation_oof_mean_ovr": pool_mean_ovr(
                      pool, oof_ids, with_fallback(oof_pred_all, fallback)),
                  "test": report}
    routers = [choice]
    classes = list(test_pred.classes)
    if best_single in classes and oof_probs:
        aligned = np.concatenate([align_probs(p, r.val[stage].classes, classes)
                                  for p, r in zip(oof_probs, with_stage, strict=True)])
        deferral = choose_margin(pool, oof_ids, aligned, classes, best_single, fallback)
        comparison["deferral"] = deferral
        if defers(deferral):
            picks = np.asarray(classes, dtype=object)[deferring_choice(
                test_pred.mean, classes.index(best_single), deferral["margin"])]
            deferral["test_share_left_default"] = float(np.mean(picks[pos] != best_single))
            f1 = macro_f1(test_truth, picks, class_list(classes, test_truth))
            routers.insert(0, RouterChoice(
                f"{stage}, deferring to {best_single} below margin "
                f"{deferral['margin']:.2f} (ensemble, test)",
                with_fallback(picks[pos], fallback), seconds, f1))
    return comparison, routers, (weights, choices, [seconds] * len(weights))


def tie_summary(test: pd.DataFrame, test_metrics: dict[str, Any],
                comparisons: dict[str, Any], headline: list[dict[str, Any]]) -> dict[str, Any]:
    """Strict against tie-aware accuracy and macro F1 of every router on the test clips, with
    its mean regret, and how many test clips have ties (and their median noise floor)."""
    regrets = {row["system"]: row["mean_regret"] for row in headline}
    named = [(ROUTER, test_metrics["ensemble"].get("tie_aware")),
             (f"{ROUTER[:-1]}, threshold {DEFAULT_THRESHOLD})",
              test_metrics["ensemble_default_threshold"].get("tie_aware")),
             *[(f"{stage} (ensemble, test)", c["test"].get("tie_aware"))
               for stage, c in comparisons.items()]]
    rows = [{"router": name, **scores, "mean_regret": regrets.get(name, float("nan"))}
            for name, scores in named if scores is not None and name in regrets]
    floors = pd.to_numeric(test["noise_floor"], errors="coerce") if "noise_floor" in test \
        else pd.Series(dtype=float)
    tied = sum(len(a) > 1 for a in tied_sets(test))
    return {"rows": rows, "n_test": int(len(test)), "n_tied": int(tied),
            "share_tied": tied / len(test) if len(test) else float("nan"),
            "median_noise_floor": float(floors.median()) if floors.notna().any()
            else float("nan")}


def _routing(table: SystemScores, test: pd.DataFrame, pred: np.ndarray, router: RouterChoice,
             headline: list[dict[str, Any]]) -> dict[str, Any]:
    """Routing value of the ensemble router on the test clips that have scores."""
    truth = test["label"].to_numpy(dtype=object)
    chosen_ovr, chosen_s = table.lookup(router.systems)
    run_all = table.run_all_seconds()
    spent = router.router_seconds + chosen_s
    oracle_row = headline[0]
    best = table.best_single()
    snr = test["snr_db"].to_numpy(np.float64) if "snr_db" in test else np.full(len(test), np.nan)
    noise = test["noise_type"].fillna("unknown").astype(str).to_numpy() \
        if "noise_type" in test else np.full(len(test), "unknown", dtype=object)
    condition = test["condition"].fillna("unknown").astype(str).to_numpy() \
        if "condition" in test else np.full(len(test), "unknown", dtype=object)
    margin = test["margin"].to_numpy(np.float64) if "margin" in test else np.full(len(test),
                                                                                  np.nan)
    return {
        "n_scored": len(table.clip_ids), "missing_scores": table.missing,
        "best_single": best,
        "oracle_minus_best_single": float(oracle_row["mean_ovr"]
                                          - float(table.ovr[best].mean())),
        "shift_null_gain_best_single": table.shift_null_gain(best),
        "chosen_system_counts": pd.Series(router.systems).value_counts().to_dict(),
        "unscored_choices": int(np.isnan(chosen_ovr).sum()),
        "compute": {
            "router_s": float(router.router_seconds.mean()),
            "chosen_enhancer_s": float(np.nanmean(chosen_s)),
            "router_plus_chosen_s": float(np.nanmean(spent)),
            "run_all_enhancers_s": float(run_all.mean()),
            "oracle_s": float(table.oracle_seconds().mean()),
            "router_overhead_vs_chosen": float(router.router_seconds.mean()
                                               / max(np.nanmean(chosen_s), 1e-12)),
            "saved_vs_run_all": float(1.0 - np.nanmean(spent) / max(run_all.mean(), 1e-12)),
        },
        "by_snr_band": breakdown(table, [snr_band(s) for s in snr], router.systems, truth, pred),
        "by_noise_type": breakdown(table, noise, router.systems, truth, pred),
        "by_condition": breakdown(table, condition, router.systems, truth, pred),
        "high_margin": margin_accuracy(truth, pred, margin),
    }
